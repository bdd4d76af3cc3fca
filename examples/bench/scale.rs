//! Many sessions: spawn, memory, threads and listing at 1,000 and 10,000, the stop that kills
//! them, a new server adopting them, and snapshots of a flooding session (figures 3 and 5).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::server::{Server, status_field};
use crate::{Sizes, percentile, row};

/// Sessions outliving the server: the time a server started again takes to adopt N running
/// sessions (from its start to all of them served), and what the keeper costs per session.
pub(crate) async fn adopt(work: &Path, sizes: &Sizes) {
    let n = sizes.sessions.max(2);
    let first = Server::start(work, &[("MONKEYPROOF_ON_EXIT", "keep")]);
    let idle_sh = json!({"command": "sh", "args": ["-is"], "task": "idle"});
    first.create(idle_sh.clone()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let keeper = monkeyproof::keeper::keeper_pids(&first.data_dir)[0];
    let keeper_rss_one = status_field(keeper, "VmRSS:");
    for _ in 1..n {
        first.create(idle_sh.clone()).await;
    }
    let dir = first.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let keeper_rss = status_field(keeper, "VmRSS:");
    let started = Instant::now();
    let second = Server::start(
        work,
        &[
            ("MONKEYPROOF_ON_EXIT", "kill"),
            ("MONKEYPROOF_DATA_DIR", dir.to_str().unwrap()),
        ],
    );
    // A server listens once it has taken every session over.
    let listening = started.elapsed();
    let sessions = second.get_json("/sessions").await;
    let running = sessions
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "running")
        .count();
    assert_eq!(running, n, "every session adopted");
    row(
        &format!("start to {n} sessions adopted"),
        format!("{:.2} s", listening.as_secs_f64()),
        "-".into(),
        None,
        "<= 2 s for 1,000",
    );
    row(
        "keeper RSS per held session",
        format!(
            "{:.2} KB",
            keeper_rss.saturating_sub(keeper_rss_one) as f64 / (n - 1) as f64
        ),
        format!("{keeper_rss_one} KB"),
        None,
        "<= 1 KB (baseline: the keeper with one)",
    );
}

/// Idle sessions, `sizes.sessions` of them and then `sizes.many_sessions`: what each costs the
/// server, how fast the next one starts and the list reads, and whether any of it grows with N.
pub(crate) async fn scale(work: &Path, sizes: &Sizes) {
    let (few, many) = (sizes.sessions, sizes.many_sessions);
    if let Err(why) = allow_ptys(many + 1024) {
        println!("  (scale: {why}; stopping where the kernel does)");
    }
    let limit = (many + 10).to_string();
    let server = Server::start(work, &[("MAX_SESSIONS", limit.as_str())]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (rss0, threads0) = (server.rss_kb(), server.threads());
    let mut spawn = Vec::new();
    let mut at_few = None;
    for i in 0..many {
        let started = Instant::now();
        // A plain interactive `sh` reading its terminal (an `exec` session would be a login
        // shell, whose profile scripts compete with the server for the CPU).
        let idle_sh = json!({"command": "sh", "args": ["-is"], "task": "idle"});
        if let Err(refused) = server.client.post::<Value>("/sessions", &idle_sh).await {
            println!("  (scale: session {} refused: {refused})", i + 1);
            break;
        }
        spawn.push(started.elapsed());
        if i + 1 == few {
            tokio::time::sleep(Duration::from_millis(500)).await;
            at_few = Some((server.rss_kb(), server.threads(), list_p99(&server).await));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reached = spawn.len();
    let (rss_few, threads_few, list_few) = at_few.expect("the first size was reached");
    let (rss_many, threads_many, list_many) =
        (server.rss_kb(), server.threads(), list_p99(&server).await);
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    let per = |rss: u64, n: usize| rss.saturating_sub(rss0) as f64 / n as f64;
    let tenth = (few / 10).max(1);
    let (early, late) = (
        percentile(&mut spawn[..few].to_vec(), 0.99),
        percentile(&mut spawn[reached - tenth..].to_vec(), 0.99),
    );
    row(
        &format!("spawn p99, last {tenth} of {reached}"),
        ms(late),
        ms(early),
        Some(late.as_secs_f64() / early.as_secs_f64()),
        &format!("<= 5 ms at 10,000 (baseline: the first {few})"),
    );
    let (per_few, per_many) = (per(rss_few, few), per(rss_many, reached));
    row(
        &format!("server RSS per idle session, {reached}"),
        format!("{per_many:.0} KB"),
        format!("{per_few:.0} KB"),
        Some(per_many / per_few),
        &format!("<= 60 KB, flat (baseline: at {few})"),
    );
    row(
        &format!("server threads, {reached} sessions"),
        format!("{threads_many}"),
        format!("{threads_few}"),
        Some(
            threads_many.saturating_sub(threads0) as f64
                / threads_few.saturating_sub(threads0).max(1) as f64,
        ),
        &format!("independent of N (baseline: at {few}; {threads0} with none)"),
    );
    row(
        &format!("GET /sessions p99, {reached} sessions"),
        ms(list_many),
        ms(list_few),
        Some(list_many.as_secs_f64() / list_few.as_secs_f64()),
        &format!("<= 50 ms at 10,000 (baseline: at {few})"),
    );
    if sizes.doze_wait_secs > 0 {
        // Quiet sessions' screens go to sleep (the server's `SCREEN_DOZE_AFTER`).
        tokio::time::sleep(Duration::from_secs(sizes.doze_wait_secs)).await;
        let asleep = per(server.rss_kb(), reached);
        row(
            &format!("server RSS per idle session, {reached}, quiet 45 s"),
            format!("{asleep:.0} KB"),
            format!("{per_many:.0} KB"),
            Some(asleep / per_many),
            "<= 60 KB (baseline: just started, screens awake)",
        );
    }
    // Each killed session signals its processes and polls until they are gone; those polls
    // share scans of /proc (one per round, not one per session).
    let mut server = server;
    let stop = server.terminate_within(Duration::from_secs(120));
    row(
        &format!("stop, killing {reached} sessions"),
        format!("{:.1} s", stop.as_secs_f64()),
        "17+ min".into(),
        None,
        "a few seconds (baseline: a scan of /proc per session and poll, 2026-12-02)",
    );
}

/// Lets the kernel hand out at least `n` PTYs (`kernel.pty.max`, as root), or says why not.
pub(crate) fn allow_ptys(n: usize) -> Result<(), String> {
    let path = "/proc/sys/kernel/pty/max";
    let max: usize = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {path}: {e}"))?
        .trim()
        .parse()
        .map_err(|e| format!("{path}: {e}"))?;
    if max >= n {
        return Ok(());
    }
    std::fs::write(path, n.to_string())
        .map_err(|e| format!("kernel.pty.max is {max} and cannot be raised to {n}: {e}"))
}

/// p99 of `GET /sessions` over 100 reads (of 20, the p99 was the slowest read).
pub(crate) async fn list_p99(server: &Server) -> Duration {
    server.read_p99("/sessions", 100).await
}

// ---- 5. snapshot under load ----

pub(crate) async fn snapshot(work: &Path, sizes: &Sizes) {
    let server = Server::start(work, &[]);
    let idle = server
        .create(json!({"task": "sleep 600", "cols": 200, "rows": 50}))
        .await;
    let flood = server.create(json!({"task": "yes 'the quick brown fox jumps over the lazy dog'", "cols": 200, "rows": 50})).await;
    let measure = |id: String| {
        let server = &server;
        async move {
            server
                .read_p99(&format!("/sessions/{id}"), sizes.snapshots)
                .await
        }
    };
    let quiet = measure(idle["id"].as_str().unwrap().to_owned()).await;
    let loaded = measure(flood["id"].as_str().unwrap().to_owned()).await;
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    row(
        "GET /sessions/:id p99, flooding, 200x50",
        ms(loaded),
        ms(quiet),
        Some(loaded.as_secs_f64() / quiet.as_secs_f64()),
        "<= 5 ms (baseline: idle session)",
    );
}
