//! Isolation: each session's cgroup and its limits (memory, processes, CPU weight), what a
//! session uses, and the flood throttle. Tests that need cgroups say so and pass where the
//! server cannot make them (not root, no controllers).

mod common;

use common::*;
use monkeyproof::engine::ExitReason;
use monkeyproof::engine::cgroup::Limits;
use monkeyproof::protocol::{SessionDetail, SessionInfo};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The limits of a running session's cgroup; `None` (and a message) when it has none.
async fn limits_of(server: &Server, session: &SessionInfo) -> Option<Limits> {
    let limits = server
        .detail(&session.about.id)
        .await
        .usage
        .and_then(|usage| usage.limits);
    if limits.is_none() {
        eprintln!("skipped: this server runs sessions without cgroups (see its log)");
    }
    limits
}

/// The directory of process `pid`'s cgroup (its pids controller's on v1).
fn cgroup_dir(pid: u32) -> Option<std::path::PathBuf> {
    let paths = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = paths
        .lines()
        .find_map(|l| l.split_once(":pids:").or(l.split_once("::")))?
        .1;
    [
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/unified",
    ]
    .iter()
    .map(|root| std::path::PathBuf::from(format!("{root}{path}")))
    .find(|dir| dir.join("pids.max").exists())
}

#[tokio::test]
async fn each_session_runs_in_a_cgroup_of_its_own_with_the_limits_asked_for() {
    let server = Server::start_with(&[("MONKEYPROOF_PIDS_MAX", "500")]);
    // The CLI's flags are the API's fields.
    let out = cli(
        &server,
        &[
            "new",
            "--memory-max",
            "64M",
            "--pids-max",
            "32",
            "--cpu-weight",
            "50",
            "--",
            "sleep",
            "30",
        ],
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (status, asked) = server.get(&format!("/sessions/{id}")).await;
    if status != StatusCode::OK {
        // Refused: this server has no cgroups.
        eprintln!("skipped: {}", String::from_utf8_lossy(&out.stderr));
        return;
    }
    let asked: SessionInfo = serde_json::from_value(asked).unwrap();
    let Some(limits) = limits_of(&server, &asked).await else {
        return;
    };
    let expected = Limits {
        memory_max: Some(64 << 20),
        pids_max: Some(32),
        cpu_weight: 50,
    };
    assert_eq!(limits, expected);
    let defaults = server.exec("sleep 30").await;
    let limits = limits_of(&server, &defaults).await.unwrap();
    assert_eq!((limits.pids_max, limits.cpu_weight), (Some(500), 100));
    let total = std::fs::read_to_string("/proc/meminfo").unwrap();
    let total_kb: u64 = total.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(
        limits.memory_max.map(|m| m >> 20),
        Some((total_kb / 2) >> 10),
        "half of the machine's memory by default"
    );

    // The program (and all it starts) is in the session's cgroup from the start: its first
    // step, before it runs the program, is to enter it.
    let mut dirs = Vec::new();
    for session in [&asked, &defaults] {
        let dir = eventually("the program in its cgroup", || async {
            cgroup_dir(session.about.pid).filter(|dir| dir.ends_with(&session.about.id))
        })
        .await;
        dirs.push(dir);
    }
    for session in [&asked, &defaults] {
        server
            .delete(&format!("/sessions/{}", session.about.id))
            .await;
        let ended = server.wait_for_end(&session.about.id).await;
        assert_eq!(ended.usage, None);
    }
    for dir in dirs {
        assert!(
            !dir.exists(),
            "an ended session's cgroup is removed: {dir:?}"
        );
    }
}

#[tokio::test]
async fn a_fork_bomb_stops_at_pids_max() {
    let server = Server::start();
    let bomb = server
        .create(json!({
            "task": "i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done; echo all started",
            "pidsMax": 10,
        }))
        .await;
    if limits_of(&server, &bomb).await.is_none() {
        return;
    }
    let ended = server.wait_for_end(&bomb.about.id).await;
    assert!(
        ended.recent_output.contains("fork"),
        "the shell could not start more: {:?}",
        ended.recent_output
    );
    assert!(!ended.recent_output.contains("all started"));
    server.delete(&format!("/sessions/{}", bomb.about.id)).await;
}

#[tokio::test]
async fn a_session_over_its_memory_limit_is_killed_alone_and_says_why() {
    let server = Server::start();
    let neighbour = server.exec("sleep 60").await;
    let hog = server
        .create(json!({
            "task": "python3 -c 'held = bytearray(256 << 20); print(\"held\")'",
            "memoryMax": 64 << 20,
        }))
        .await;
    if limits_of(&server, &neighbour).await.is_none() {
        return;
    }
    let ended = server.wait_for_end(&hog.about.id).await;
    assert_eq!(ended.info.now.exit_reason, Some(ExitReason::OutOfMemory));
    assert!(!ended.recent_output.contains("held"));
    let mut events = Sse::open(&server, "/events?types=exit", Some(0)).await;
    let exit = events.until(&hog.about.id, "exit").await.pop().unwrap();
    let exit = serde_json::to_value(&exit.kind).unwrap();
    assert_eq!(exit["reason"], "outOfMemory", "{exit}");
    // Listed the same, and kept across restarts in the record.
    let (_, list) = server.get("/sessions").await;
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == hog.about.id.as_str())
        .unwrap();
    assert_eq!(listed["exitReason"], "outOfMemory");

    let neighbour = server.detail(&neighbour.about.id).await;
    assert_eq!(
        neighbour.info.now.ended_at, None,
        "the other session runs on"
    );
    assert_eq!(neighbour.info.now.exit_reason, None);
    server
        .delete(&format!("/sessions/{}", neighbour.info.about.id))
        .await;
}

#[tokio::test]
async fn a_program_that_cannot_start_leaves_no_cgroup_behind() {
    use std::os::unix::fs::MetadataExt;
    let server = Server::start();
    let probe = server.exec("sleep 30").await;
    if limits_of(&server, &probe).await.is_none() {
        return;
    }
    let meta = std::fs::metadata(&server.data_dir).unwrap();
    let sessions_dir = cgroup_dir(probe.about.pid)
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    assert!(
        sessions_dir.ends_with(format!("data-{}-{}", meta.dev(), meta.ino())),
        "{sessions_dir:?}"
    );
    let count = || {
        std::fs::read_dir(&sessions_dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_dir())
            .count()
    };
    assert_eq!(count(), 1, "the probe's");
    // The forked child reports exec's failure: 400, and its cgroup goes with it.
    for command in ["/no/such/program", "no-such-program-xyz"] {
        let (status, body) = server
            .post("/sessions", json!({"task": "x", "command": command}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("No such file"),
            "{body}"
        );
        assert_eq!(count(), 1, "{command}");
    }
    server
        .delete(&format!("/sessions/{}", probe.about.id))
        .await;
}

#[tokio::test]
async fn limits_out_of_range_are_refused_and_need_cgroups() {
    let server = Server::start();
    for (field, value) in [
        ("memoryMax", json!(1000)),
        ("memoryMax", json!(1u64 << 51)),
        ("pidsMax", json!(0)),
        ("cpuWeight", json!(0)),
        ("cpuWeight", json!(10_001)),
    ] {
        let (status, body) = server
            .post("/sessions", json!({"task": "true", field: value}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}={value}: {body}");
        assert!(body["error"].as_str().unwrap().contains(field), "{body}");
    }
    let (status, body) = server
        .post("/sessions", json!({"task": "true", "pidsMax": -1}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let without = Server::start_with(&[("MONKEYPROOF_CGROUPS", "false")]);
    let (status, body) = without
        .post("/sessions", json!({"task": "true", "pidsMax": 100}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("cgroups"),
        "{body}"
    );
    let plain = without.exec("sleep 30").await;
    let usage = without.detail(&plain.about.id).await.usage.unwrap();
    assert_eq!(usage.limits, None, "no cgroup");
    without
        .delete(&format!("/sessions/{}", plain.about.id))
        .await;
}

#[tokio::test]
async fn a_running_session_shows_the_cpu_and_memory_its_processes_use() {
    let server = Server::start();
    // A child (sh waits for it) that holds 64 MiB, written so that it is resident, after
    // spinning for 0.4 s.
    let session = server
        .exec(
            "python3 -c 'import time\nt = time.time()\nwhile time.process_time() < 0.4: pass\n\
             held = b\"x\" * (64 << 20)\nprint(\"holding\")\ntime.sleep(60)'; echo done",
        )
        .await;
    let detail = server.wait_for_screen(&session.about.id, "holding").await;
    let usage = detail.usage.expect("usage while running");
    assert!(usage.processes >= 2, "the shell and python: {usage:?}");
    assert!(usage.memory_bytes >= 64 << 20, "{usage:?}");
    assert!(usage.memory_bytes < 1 << 30, "{usage:?}");
    assert!(usage.cpu_ms >= 300, "{usage:?}");
    assert!(!usage.throttled);

    server
        .delete(&format!("/sessions/{}", session.about.id))
        .await;
    let ended = server.wait_for_end(&session.about.id).await;
    assert_eq!(ended.usage, None, "nothing runs, nothing is used");
}

/// The nice value of process `pid` (field 19 of its stat).
fn nice_of(pid: u32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(16)
        .unwrap()
        .parse()
        .unwrap()
}

/// A session that floods for 1.5 s and then sits quietly (the same process, so what it gets
/// can be seen coming back) is throttled, and let go; `throttled(detail)` says how it is seen.
async fn flood_is_throttled_then_let_go(
    server: &Server,
    throttled: impl Fn(&SessionDetail) -> bool,
) {
    let quiet = server.exec("sleep 30").await;
    let flood = server
        .exec("timeout 1.5 yes flood-flood-flood-flood; exec sleep 30")
        .await;
    server
        .wait_for(&flood.about.id, "the flood to be throttled", |d| {
            throttled(d)
        })
        .await;
    let usage = |detail: SessionDetail| detail.usage.expect("usage while running");
    assert!(usage(server.detail(&flood.about.id).await).throttled);
    let quiet_detail = server.detail(&quiet.about.id).await;
    assert!(!throttled(&quiet_detail), "a quiet session keeps its share");
    assert!(!usage(quiet_detail).throttled);
    server
        .wait_for(
            &flood.about.id,
            "the throttle to be let go once it quiets",
            |d| !throttled(d),
        )
        .await;
    assert!(!usage(server.detail(&flood.about.id).await).throttled);
    server
        .delete(&format!("/sessions/{}", flood.about.id))
        .await;
    server
        .delete(&format!("/sessions/{}", quiet.about.id))
        .await;
}

#[tokio::test]
async fn a_flooding_session_gets_the_least_cpu_weight_until_it_quiets() {
    let server = Server::start();
    let probe = server.exec("sleep 30").await;
    let Some(limits) = limits_of(&server, &probe).await else {
        return;
    };
    let weight = |d: &SessionDetail| {
        d.usage
            .as_ref()
            .and_then(|u| u.limits)
            .map(|l| l.cpu_weight)
    };
    assert_eq!(limits.cpu_weight, 100);
    flood_is_throttled_then_let_go(&server, |d| weight(d) == Some(1)).await;
    server
        .delete(&format!("/sessions/{}", probe.about.id))
        .await;
}

#[tokio::test]
async fn without_cgroups_a_flooding_session_runs_at_the_lowest_priority_until_it_quiets() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: flood throttling without cgroups needs root (or CAP_SYS_NICE)");
        return;
    }
    let server = Server::start_with(&[("MONKEYPROOF_CGROUPS", "false")]);
    flood_is_throttled_then_let_go(&server, |d| nice_of(d.info.about.pid) == 19).await;
}

/// While somebody types into one session, a flood in another is read at a bounded rate
/// (`keeper/bulk.rs`; the figure is in the benchmark): slowed, it still loses nothing and
/// ends while the typing goes on.
#[tokio::test]
async fn a_flood_beside_a_typed_session_loses_nothing() {
    let server = Server::start();
    let typed = server.exec("exec cat").await;
    let lines = 200_000;
    let flood = server.exec(&format!("seq {lines}")).await;
    let mut typed_keys = 0;
    let ended = loop {
        let (status, _) = server
            .post(
                &format!("/sessions/{}/input", typed.about.id),
                json!({"input": "k", "enter": false}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        typed_keys += 1;
        let detail = server.detail(&flood.about.id).await;
        if detail.info.now.exit_code.is_some() {
            break detail;
        }
        assert!(
            typed_keys < 300,
            "the flood did not end within 300 keystrokes"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let expected: String = (1..=lines).map(|i| format!("{i}\r\n")).collect();
    let ended = server.wait_for_end(&ended.info.about.id).await;
    assert_eq!(ended.info.now.exit_code, Some(0));
    assert!(
        server.transcript(&flood.about.id).await == expected.as_bytes(),
        "the flood's output, whole and in order"
    );
    assert!(ended.screen.lines.iter().any(|l| l == &lines.to_string()));
    server
        .wait_for_screen(&typed.about.id, &"k".repeat(typed_keys.min(40)))
        .await;
}

#[test]
fn the_wire_names_of_exit_reasons() {
    let value: Value = serde_json::to_value(ExitReason::OutOfMemory).unwrap();
    assert_eq!(value, "outOfMemory");
}

/// The directories of process `pid`'s cgroups in the memory, pids and cpu hierarchies (v1), or
/// its one cgroup (v2).
fn cgroup_dirs(pid: u32) -> Vec<std::path::PathBuf> {
    let paths = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    paths
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let (mount, file) = match controllers {
                // v2, when it has the controllers (on a hybrid host it has none of them).
                "" => ("/sys/fs/cgroup".to_owned(), "memory.max"),
                c if c.split(',').any(|c| ["memory", "pids", "cpu"].contains(&c)) => {
                    (format!("/sys/fs/cgroup/{c}"), "cgroup.procs")
                }
                _ => return None,
            };
            let dir = std::path::PathBuf::from(format!("{mount}{path}"));
            dir.join(file).exists().then_some(dir)
        })
        .collect()
}

#[tokio::test]
async fn a_stop_that_kills_leaves_no_cgroup_behind() {
    let mut server = Server::start();
    let session = server.exec("sleep 30").await;
    if limits_of(&server, &session).await.is_none() {
        return;
    }
    let dirs = eventually("the program in its cgroups", || async {
        let dirs = cgroup_dirs(session.about.pid);
        (!dirs.is_empty() && dirs.iter().all(|d| d.ends_with(&session.about.id))).then_some(dirs)
    })
    .await;
    server.terminate();
    // The sessions' cgroups, and the data directory's that held them.
    for dir in dirs
        .iter()
        .flat_map(|d| [d.clone(), d.parent().unwrap().to_path_buf()])
    {
        assert!(!dir.exists(), "left behind: {dir:?}");
    }
}

/// cgroup v2, where the server starts in a cgroup other than the root that holds processes (a
/// systemd service, a container): they move to one leaf beside the sessions' directory, and a
/// second server started from that leaf shares both instead of nesting a leaf of its own (each
/// start went one level deeper, and a stop looked for its sessions' cgroups in the wrong place).
/// Runs where this test's own cgroup is such a v2 cgroup (`.ci/cgroup-v2` boots a VM for it).
#[tokio::test]
async fn on_cgroup_v2_the_servers_of_one_service_share_one_leaf() {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let Some(own) = own.lines().find_map(|l| l.strip_prefix("0::")) else {
        return eprintln!("skipped: not a cgroup v2 system");
    };
    let root = std::path::Path::new("/sys/fs/cgroup");
    // An earlier test's server may have moved this process into the leaf already.
    let mut service = root.join(own.trim_start_matches('/'));
    if service.ends_with("monkeyproof-server") {
        service.pop();
    }
    if !root.join("cgroup.controllers").exists() || service == root {
        return eprintln!("skipped: this test runs in a cgroup v2 other than the root");
    }
    let cgroup_of = |pid: u32| {
        let line = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        root.join(line.trim().strip_prefix("0::/").unwrap())
    };
    let (first, second) = (Server::start(), Server::start());
    for server in [&first, &second] {
        let session = server.exec("sleep 30").await;
        assert!(limits_of(server, &session).await.is_some(), "cgroups on v2");
        assert_eq!(cgroup_of(server.pid()), service.join("monkeyproof-server"));
        let dir = cgroup_of(session.about.pid);
        assert_eq!(dir.file_name().unwrap(), session.about.id.as_str());
        assert_eq!(
            dir.parent().unwrap().parent().unwrap(),
            service.join("monkeyproof")
        );
    }
    let nested = service
        .join("monkeyproof-server")
        .join("monkeyproof-server");
    assert!(!nested.exists(), "no leaf below the leaf: {nested:?}");
}
