//! Soak: many create / stream / abrupt disconnect / kill cycles; descriptors, threads, memory and
//! children return to their baseline. `SOAK_CYCLES` sets the count (default 2000).

mod common;

use std::time::Duration;

use common::*;

/// What the server process holds.
#[derive(Debug, Clone, Copy)]
struct Usage {
    /// Descriptors other than sockets (PTYs, transcripts, pipes…).
    fds: usize,
    /// Sockets: the listener and the clients' kept-alive connections.
    sockets: usize,
    threads: usize,
    rss_kb: usize,
    children: usize,
}

fn usage(pid: u32) -> Usage {
    let targets: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|t| t.to_string_lossy().into_owned())
        .collect();
    let sockets = targets.iter().filter(|t| t.starts_with("socket:")).count();
    Usage {
        fds: targets.len() - sockets,
        sockets,
        threads: status_field(pid, "Threads:"),
        rss_kb: status_field(pid, "VmRSS:"),
        children: children_of(pid).len(),
    }
}

/// A number from `/proc/PID/status`.
fn status_field(pid: u32, name: &str) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// The names of the server's threads, sorted (to say which one a leak is).
fn thread_names(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .collect();
    names.sort();
    names
}

async fn cycle(server: &Server, n: usize) {
    let session = server.exec(&format!("echo cycle-{n}; exec cat")).await;
    let mut ws = server.raw_ws(&session.about.id, "?since=0").await;
    read_raw_until(&mut ws, |b| contains(b, &format!("cycle-{n}"))).await;
    send_bytes(&mut ws, b"typed\r").await;
    // Abrupt: no close frame, the TCP connection just goes.
    drop(ws);
    let (status, _) = server
        .delete(&format!("/sessions/{}", session.about.id))
        .await;
    assert!(status.is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_stream_disconnect_kill_cycles_leave_nothing_behind() {
    let cycles: usize = std::env::var("SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let server = std::sync::Arc::new(Server::start_with(&[
        ("SESSION_TTL_MS", "200"),
        ("MAX_SESSIONS", "100"),
    ]));
    for n in 0..20 {
        cycle(&server, n).await;
    }
    let settled = |server: std::sync::Arc<Server>| async move {
        eventually("every session to end and expire", || async {
            let (_, list) = server.get("/sessions").await;
            list.as_array().unwrap().is_empty().then_some(())
        })
        .await;
        // Idle pool threads leave within a few seconds, but periodic work (sweeps, the
        // throttle) borrows one now and then: the fewest threads seen over a while is the count.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut fewest_threads = usize::MAX;
        for _ in 0..30 {
            fewest_threads = fewest_threads.min(status_field(server.pid(), "Threads:"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Usage {
            threads: fewest_threads.min(status_field(server.pid(), "Threads:")),
            ..usage(server.pid())
        }
    };
    let baseline = settled(server.clone()).await;
    let baseline_threads = thread_names(server.pid());

    let concurrency = 8;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let server = server.clone();
        tasks.spawn(async move {
            let mut n = worker;
            while n < cycles {
                cycle(&server, n).await;
                n += concurrency;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let after = settled(server.clone()).await;
    eprintln!("soak of {cycles} cycles: baseline {baseline:?}, after {after:?}");
    assert!(
        after.fds <= baseline.fds,
        "descriptors leaked: {baseline:?} -> {after:?}"
    );
    // Each worker's HTTP client may keep its connection alive.
    assert!(
        after.sockets <= baseline.sockets + concurrency,
        "sockets leaked: {baseline:?} -> {after:?}"
    );
    assert!(
        after.threads <= baseline.threads,
        "threads leaked: {baseline:?} -> {after:?}; named {baseline_threads:?} -> {:?}",
        thread_names(server.pid())
    );
    assert_eq!(after.children, 0, "children left: {after:?}");
    assert!(
        after.rss_kb <= baseline.rss_kb + 32 * 1024,
        "memory grew by more than 32 MB: {baseline:?} -> {after:?}"
    );
    no_zombies_left(&server).await;
}
