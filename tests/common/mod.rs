//! Test harness: runs the real `monkeyproof` binary on an ephemeral port with its own data
//! directory, and talks HTTP and WebSocket to it.

#![allow(dead_code)] // each test binary uses its own part of the harness

use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use monkeyproof::client::{Client, Launched};
use monkeyproof::protocol::{RAW_SUBPROTOCOL, SessionDetail, SessionInfo};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

mod sse;
#[allow(unused_imports)] // each test binary uses its own part of the harness
pub use sse::{Sse, type_of};

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// Runs the CLI, `monkeyproof ARGS`, against `server` with its token.
pub fn cli(server: &Server, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_monkeyproof"))
        .args(args)
        .env("MONKEYPROOF_URL", server.url(""))
        .env("AGENT_WS_TOKEN", TOKEN)
        .output()
        .unwrap()
}

pub type Ws = monkeyproof::client::Socket;

/// A running server, killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub addr: String,
    /// The project's client, with the token.
    pub client: Client,
    pub data_dir: PathBuf,
    /// The data dir the server said at start it uses.
    pub announced_data_dir: Option<PathBuf>,
    pub http: reqwest::Client,
    log: Option<PathBuf>,
    /// What the server printed on stdout after its first two lines.
    pub printed: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// How to start a server beyond the defaults (token in `AGENT_WS_TOKEN`, a fresh data dir).
#[derive(Default)]
pub struct Launch<'a> {
    pub env: &'a [(&'a str, &'a str)],
    pub args: &'a [&'a str],
    /// Variables the harness would set that must not be set.
    pub without_env: &'a [&'a str],
    /// Log at info level to a file (`Server::log_path`).
    pub log: bool,
    pub nofile: Option<u64>,
    pub data_dir: Option<PathBuf>,
}

impl Server {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts the server with extra environment variables.
    pub fn start_with(env: &[(&str, &str)]) -> Self {
        Self::launch(Launch {
            env,
            ..Launch::default()
        })
    }

    /// Starts the server with its log (stderr, at info level) going to `server.log_path()`.
    pub fn start_logging(env: &[(&str, &str)]) -> Self {
        Self::launch(Launch {
            env,
            log: true,
            ..Launch::default()
        })
    }

    /// The log file of a server started with `log`.
    pub fn log_path(&self) -> PathBuf {
        self.log.clone().expect("started with a log")
    }

    /// What the server logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts the server allowed at most `nofile` open descriptors.
    pub fn start_with_fd_limit(nofile: u64) -> Self {
        Self::launch(Launch {
            nofile: Some(nofile),
            ..Launch::default()
        })
    }

    /// Starts the server as `launch` says; panics if it does not start listening.
    pub fn launch(launch: Launch) -> Self {
        let data_dir = launch
            .data_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("mp-test-{}", rand_suffix())));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_monkeyproof"));
        cmd.env("PORT", "0")
            .env("AGENT_WS_TOKEN", TOKEN)
            .env("MONKEYPROOF_DATA_DIR", &data_dir)
            .env("KILL_GRACE_MS", "1000")
            // Tests that do not restart the server leave nothing running behind them.
            .env("MONKEYPROOF_ON_EXIT", "kill")
            .env("RUST_LOG", "monkeyproof=warn")
            .args(launch.args)
            .stderr(Stdio::inherit());
        let log = launch
            .log
            .then(|| std::env::temp_dir().join(format!("mp-log-{}.log", rand_suffix())));
        if let Some(log) = &log {
            cmd.env("RUST_LOG", "monkeyproof=info")
                .stderr(std::fs::File::create(log).unwrap());
        }
        for (k, v) in launch.env {
            cmd.env(k, v);
        }
        for k in launch.without_env {
            cmd.env_remove(k);
        }
        if let Some(limit) = launch.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let rlimit = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let Launched {
            child,
            addr,
            stdout: mut lines,
        } = monkeyproof::client::launch(cmd).expect("start server");
        let announced_data_dir = lines
            .next()
            .and_then(Result::ok)
            .and_then(|l| l.strip_prefix("data dir: ").map(PathBuf::from));
        // Keep draining stdout so the server never blocks on a full pipe.
        let printed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let for_drain = printed.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                for_drain.lock().unwrap().push(line);
            }
        });
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {TOKEN}").parse().unwrap(),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap();
        let base = format!("http://{addr}");
        Server {
            child,
            client: Client::new(&base, TOKEN),
            base,
            addr,
            data_dir,
            announced_data_dir,
            http,
            log,
            printed,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POST /sessions; panics unless 201.
    pub async fn create(&self, body: Value) -> SessionInfo {
        let (status, info) = self.post("/sessions", body.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "create {body}: {info}");
        serde_json::from_value(info).unwrap()
    }

    /// Starts `/bin/sh -lc TASK`.
    pub async fn exec(&self, task: &str) -> SessionInfo {
        self.create(json!({ "task": task })).await
    }

    pub async fn detail(&self, id: &str) -> SessionDetail {
        let res = self
            .http
            .get(self.url(&format!("/sessions/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.json().await.unwrap()
    }

    /// Polls the session until `ok` holds; panics with the last state after `limit`.
    pub async fn wait_for(
        &self,
        id: &str,
        what: &str,
        ok: impl Fn(&SessionDetail) -> bool,
    ) -> SessionDetail {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let detail = self.detail(id).await;
            if ok(&detail) {
                return detail;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {detail:#?}"
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    /// Waits for the session's screen to contain `text`.
    pub async fn wait_for_screen(&self, id: &str, text: &str) -> SessionDetail {
        self.wait_for(id, text, |d| {
            d.screen.lines.iter().any(|l| l.contains(text))
        })
        .await
    }

    /// Waits until `n` WebSocket viewers are attached to the session.
    pub async fn wait_for_viewers(&self, id: &str, n: usize) -> SessionDetail {
        self.wait_for(id, &format!("{n} viewers"), |d| d.info.now.ws_clients == n)
            .await
    }

    pub async fn wait_for_end(&self, id: &str) -> SessionDetail {
        self.wait_for(id, "the session to end", |d| d.info.now.ended_at.is_some())
            .await
    }

    /// POST JSON to a path; returns status and body.
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(&body)).await
    }

    /// `get` for an owned path (handy in closures).
    pub async fn get_path(&self, path: String) -> (StatusCode, Value) {
        self.get(&path).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        self.client
            .call(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// GET a plain-text route; panics unless it answers 200 with `text/plain`.
    pub async fn get_text(&self, path: &str) -> reqwest::Response {
        let res = self.http.get(self.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let content_type = res.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/plain"),
            "{path}: {content_type}"
        );
        res
    }

    pub async fn transcript(&self, id: &str) -> Vec<u8> {
        self.client
            .get_bytes(&format!("/sessions/{id}/transcript"))
            .await
            .unwrap()
    }

    /// A WebSocket handshake request for a session, with the token header unless `token` is None.
    pub fn ws_request(
        &self,
        id: &str,
        query: &str,
        protocols: &[&str],
        token: Option<&str>,
    ) -> tungstenite::handshake::client::Request {
        let mut req = format!("ws://{}/sessions/{id}/ws{query}", self.addr)
            .into_client_request()
            .unwrap();
        if let Some(token) = token {
            req.headers_mut().insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
            );
        }
        if !protocols.is_empty() {
            req.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_str(&protocols.join(", ")).unwrap(),
            );
        }
        req
    }

    /// Opens a raw-protocol WebSocket.
    pub async fn raw_ws(&self, id: &str, query: &str) -> Ws {
        let req = self
            .client
            .ws_request(&format!("/sessions/{id}/ws{query}"), Some(RAW_SUBPROTOCOL))
            .unwrap();
        let (ws, res) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(
            res.headers().get("sec-websocket-protocol").unwrap(),
            RAW_SUBPROTOCOL
        );
        ws
    }

    /// Opens a compat-protocol WebSocket (no subprotocol, `?token=`).
    pub async fn compat_ws(&self, id: &str) -> Ws {
        let req = self.ws_request(id, &format!("?token={TOKEN}"), &[], None);
        tokio_tungstenite::connect_async(req).await.unwrap().0
    }

    /// The HTTP status a WebSocket handshake is refused with (or 101).
    pub async fn ws_status(&self, req: tungstenite::handshake::client::Request) -> u16 {
        match tokio_tungstenite::connect_async(req).await {
            Ok((_, res)) => res.status().as_u16(),
            Err(tungstenite::Error::Http(res)) => res.status().as_u16(),
            Err(e) => panic!("unexpected WebSocket error: {e}"),
        }
    }

    /// Sends SIGTERM and waits for the server to exit; returns how long it took.
    pub fn terminate(&mut self) -> Duration {
        let started = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        self.child.wait().unwrap();
        started.elapsed()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ends the server with `signal` and waits for it, leaving its data directory for the next
    /// server (returned).
    pub fn stop_keeping_data(mut self, signal: nix::sys::signal::Signal) -> PathBuf {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).unwrap();
        self.child.wait().unwrap();
        std::mem::take(&mut self.data_dir)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if !self.data_dir.as_os_str().is_empty() {
            // A test that failed may have left sessions to the keeper: end them with it.
            for keeper in keepers_of(&self.data_dir) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(keeper as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// One thing received on a WebSocket.
#[derive(Debug)]
pub enum Frame {
    Json(Value),
    Bytes(Vec<u8>),
    Closed(Option<u16>),
}

/// The next data frame (pings skipped), or `Closed`; panics after 10 s.
pub async fn next_frame(ws: &mut Ws) -> Frame {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("no WebSocket frame within 10 s");
        match msg {
            Some(Ok(Message::Text(t))) => return Frame::Json(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Binary(b))) => return Frame::Bytes(b.to_vec()),
            Some(Ok(Message::Close(frame))) => {
                return Frame::Closed(frame.map(|f| u16::from(f.code)));
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Frame::Closed(None),
        }
    }
}

/// The next JSON control message; panics on anything else.
pub async fn next_json(ws: &mut Ws) -> Value {
    match next_frame(ws).await {
        Frame::Json(v) => v,
        other => panic!("expected a JSON frame, got {other:?}"),
    }
}

pub async fn send_json(ws: &mut Ws, value: Value) {
    ws.send(Message::Text(value.to_string().into()))
        .await
        .unwrap();
}

pub async fn send_bytes(ws: &mut Ws, bytes: &[u8]) {
    ws.send(Message::Binary(bytes.to_vec().into()))
        .await
        .unwrap();
}

/// Raw protocol: collects output bytes until `done` holds for everything received so far.
/// Control messages are skipped.
pub async fn read_raw_until(ws: &mut Ws, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut out = Vec::new();
    while !done(&out) {
        match next_frame(ws).await {
            Frame::Bytes(b) => out.extend_from_slice(&b),
            Frame::Json(_) => {}
            Frame::Closed(code) => panic!(
                "closed ({code:?}) before the condition held; got {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    out
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Retries `f` until it returns `Some`, for up to 15 s.
pub async fn eventually<T, F, Fut>(what: &str, f: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// Whether a process is alive (exists and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim().to_owned()))
        .is_some_and(|rest| !rest.starts_with('Z'))
}

/// The parent and state (`R`, `S`, `Z`…) of process `pid`, if it exists.
pub fn parent_and_state(pid: u32) -> Option<(u32, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit(')').next()?.split_whitespace();
    let state = fields.next()?.to_owned();
    Some((fields.next()?.parse().ok()?, state))
}

/// Pids of the children of `parent`.
pub fn children_of(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| parent_and_state(pid).is_some_and(|(ppid, _)| ppid == parent))
        .collect()
}

/// Pids of zombie children of `parent`.
pub fn zombie_children(parent: u32) -> Vec<u32> {
    children_of(parent)
        .into_iter()
        .filter(|&pid| parent_and_state(pid).is_some_and(|(_, state)| state == "Z"))
        .collect()
}

/// Waits until the server has no zombie children: a session's program is reaped once the last
/// process of its session is gone (within a poll of a kill, or a second).
pub async fn no_zombies_left(server: &Server) {
    eventually("every finished program to be reaped", || async {
        zombie_children(server.pid()).is_empty().then_some(())
    })
    .await;
}

/// A stand-in agent program of `tests/fixtures/agents/` (`claude`, `codex`).
pub fn agent_fixture(name: &str) -> String {
    format!(
        "{}/tests/fixtures/agents/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Count of a process's open descriptors on PTYs (`/dev/ptmx`, `/dev/pts/N`) or on files below
/// `dir` (transcripts).
pub fn pty_and_file_fds(pid: u32, dir: &std::path::Path) -> usize {
    // The database and lock in the data dir are the server's, not the sessions'.
    let transcripts = dir.join("transcripts");
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|target| {
                    target.starts_with("/dev/ptmx")
                        || target.starts_with("/dev/pts")
                        || target.starts_with(&transcripts)
                })
                .count()
        })
        .unwrap_or(0)
}

/// A name no other server of this run has: the clock alone can repeat for servers started at
/// once by parallel tests (one's cleanup then removed the other's data dir).
fn rand_suffix() -> String {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// An HTTP client without the token whose connections come from `ip` (any 127.x.y.z works on
/// Linux), so tests can act as distinct clients.
pub fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// The keeper processes serving `data_dir`.
pub fn keepers_of(data_dir: &std::path::Path) -> Vec<u32> {
    monkeyproof::keeper::keeper_pids(data_dir)
}

/// The raw output a viewer receives until the server closes the socket (exit and event messages
/// skipped).
pub async fn read_raw_until_closed(ws: &mut Ws) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        match next_frame(ws).await {
            Frame::Bytes(b) => out.extend_from_slice(&b),
            Frame::Json(msg) if msg["type"] == "exit" || msg["type"] == "event" => {}
            Frame::Json(msg) => panic!("unexpected {msg}"),
            Frame::Closed(_) => return out,
        }
    }
}

/// `output` holds each of `line-1` … `line-{n}` exactly once.
pub fn assert_each_line_once(output: &[u8], n: usize) {
    let text = String::from_utf8_lossy(output);
    for i in 1..=n {
        assert_eq!(
            text.matches(&format!("line-{i}\r\n")).count(),
            1,
            "line-{i}"
        );
    }
}
