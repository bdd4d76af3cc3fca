//! The server under test: the real binary started on an ephemeral port with its own data
//! directory, and what the figures read of it (RSS, threads, timed reads).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use monkeyproof::client::{Client, Launched, Socket, launch};
use monkeyproof::protocol::RAW_SUBPROTOCOL;
use serde_json::Value;

use crate::{TOKEN, percentile};

pub(crate) struct Server {
    pub(crate) child: Child,
    /// The project's client, with the token.
    pub(crate) client: Client,
    pub(crate) data_dir: PathBuf,
}

impl Server {
    pub(crate) fn start(work: &Path, env: &[(&str, &str)]) -> Server {
        let exe = std::env::current_exe().unwrap();
        // examples live in target/<profile>/examples; the server binary one level up.
        let bin = exe.parent().unwrap().parent().unwrap().join("monkeyproof");
        let mut cmd = Command::new(&bin);
        let data_dir = env
            .iter()
            .find(|(k, _)| *k == "MONKEYPROOF_DATA_DIR")
            .map_or_else(
                || work.join(format!("data-{}", rand::random::<u32>())),
                |(_, dir)| PathBuf::from(dir),
            );
        cmd.env("PORT", "0")
            .env("AGENT_WS_TOKEN", TOKEN)
            .env("MONKEYPROOF_DATA_DIR", &data_dir)
            // The benchmark's sessions end with its servers.
            .env("MONKEYPROOF_ON_EXIT", "kill")
            .env("KILL_GRACE_MS", "500")
            .env("RUST_LOG", "monkeyproof=warn")
            .env("MAX_SESSIONS", "5000");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let Launched {
            child,
            addr,
            stdout,
        } = launch(cmd)
            .unwrap_or_else(|e| panic!("cannot start {}: {e} (build it first)", bin.display()));
        std::thread::spawn(move || stdout.for_each(drop));
        Server {
            child,
            client: Client::new(&format!("http://{addr}"), TOKEN),
            data_dir,
        }
    }

    pub(crate) async fn create(&self, body: Value) -> Value {
        self.client
            .post("/sessions", &body)
            .await
            .unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    pub(crate) async fn ws(&self, id: &str, query: &str) -> Socket {
        let path = format!("/sessions/{id}/ws{query}");
        let request = self
            .client
            .ws_request(&path, Some(RAW_SUBPROTOCOL))
            .unwrap();
        // A small read buffer: tungstenite zero-fills it before every read, and the default
        // 128 KB would make the bench's own viewers the busiest thing on the machine.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(16 * 1024);
        tokio_tungstenite::connect_async_with_config(request, Some(config), true)
            .await
            .unwrap()
            .0
    }

    /// GET `path`, as JSON.
    pub(crate) async fn get_json(&self, path: &str) -> Value {
        self.client.get(path).await.unwrap()
    }

    /// p99 of `n` reads of `path`, each to its last byte.
    pub(crate) async fn read_p99(&self, path: &str, n: usize) -> Duration {
        let mut samples = Vec::new();
        for _ in 0..n {
            let started = Instant::now();
            self.client.get_bytes(path).await.unwrap();
            samples.push(started.elapsed());
        }
        percentile(&mut samples, 0.99)
    }

    /// How many bytes the session's program has written so far.
    pub(crate) async fn output_bytes(&self, id: &str) -> u64 {
        let detail = self.get_json(&format!("/sessions/{id}")).await;
        detail["outputBytes"].as_u64().unwrap()
    }

    pub(crate) fn rss_kb(&self) -> u64 {
        status_field(self.child.id(), "VmRSS:")
    }

    pub(crate) fn threads(&self) -> u64 {
        status_field(self.child.id(), "Threads:")
    }

    /// Stops the server (SIGTERM) and waits for it, leaving its sessions to the keeper (when
    /// started with `MONKEYPROOF_ON_EXIT=keep`); returns the data directory.
    pub(crate) fn stop(mut self) -> PathBuf {
        self.terminate();
        // Dropped next: with no data directory, it leaves the keeper alone.
        std::mem::take(&mut self.data_dir)
    }

    /// SIGTERM, then SIGKILL if it has not exited within 10 s.
    pub(crate) fn terminate(&mut self) {
        self.terminate_within(Duration::from_secs(10));
    }

    /// SIGTERM, then SIGKILL if it has not exited within `limit`; returns how long it took.
    pub(crate) fn terminate_within(&mut self, limit: Duration) -> Duration {
        let started = Instant::now();
        // Already waited for: its pid may be someone else's now.
        if let Ok(Some(_)) = self.child.try_wait() {
            return Duration::ZERO;
        }
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        while started.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        started.elapsed()
    }
}

impl Drop for Server {
    /// Stops the server, which kills its sessions; what a stuck one leaves, its keeper with it.
    fn drop(&mut self) {
        self.terminate();
        if self.data_dir.as_os_str().is_empty() {
            return;
        }
        for keeper in monkeyproof::keeper::keeper_pids(&self.data_dir) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(keeper as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        // Hung up, the sessions end; nobody is left to remove their cgroups.
        monkeyproof::engine::cgroup::remove_all_of(&self.data_dir, Duration::from_secs(10));
    }
}

pub(crate) fn status_field(pid: u32, name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
