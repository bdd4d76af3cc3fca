//! Session lifecycle: kill of whole process trees, TTL expiry, the session limit, server shutdown.

mod common;

use std::time::Duration;

use common::*;
use monkeyproof::protocol::SessionStatus;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn delete_kills_a_background_job_that_traps_term() {
    let server = Server::start_with(&[("KILL_GRACE_MS", "700")]);
    let fds = || pty_and_file_fds(server.pid(), &server.data_dir);
    assert_eq!(fds(), 0);
    let (session, bg) = start_stubborn_job(&server).await;
    assert!(process_alive(bg));
    assert_eq!(
        fds(),
        1,
        "the master, for input and resizes (the keeper reads it and writes the transcript)"
    );

    let path = format!("/sessions/{}", session.about.id);
    let (status, body) = server.delete(&path).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"killed": true})));
    // The job ignores TERM and HUP: only SIGKILL after the grace period ends it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        process_alive(bg),
        "the job should outlive SIGTERM until the grace period ends"
    );
    eventually("the background job to die", || async {
        (!process_alive(bg)).then_some(())
    })
    .await;

    let detail = server.wait_for_end(&session.about.id).await;
    assert_eq!(detail.info.now.status, SessionStatus::Killed);
    assert!(detail.info.now.signal.is_some() || detail.info.now.exit_code.is_some());
    // Idempotent, and the status stays `killed`.
    let (status, body) = server.delete(&path).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"killed": true})));
    assert_eq!(
        server.detail(&session.about.id).await.info.now.status,
        SessionStatus::Killed
    );
    // No zombies, and the PTY descriptors are closed again.
    no_zombies_left(&server).await;
    eventually("PTY descriptors to be released", || async {
        (fds() == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn delete_ends_an_interactive_shell_that_ignores_term() {
    let server = Server::start();
    let session = server.exec("exec bash --norc -i").await;
    server
        .wait_for(&session.about.id, "a prompt", |d| {
            d.info.now.output_bytes > 0
        })
        .await;
    server
        .delete(&format!("/sessions/{}", session.about.id))
        .await;
    let detail = server.wait_for_end(&session.about.id).await;
    assert_eq!(detail.info.now.status, SessionStatus::Killed);
    assert!(!process_alive(session.about.pid));
}

#[tokio::test]
async fn finished_sessions_expire_after_their_ttl() {
    let server = Server::start_with(&[
        ("SESSION_TTL_MS", "400"),
        ("INTERACTIVE_SESSION_TTL_MS", "60000"),
    ]);
    let short = server.exec("echo bye").await;
    let long = server
        .create(json!({"task": "-c", "type": "interactive", "command": "bash", "args": ["--norc"]}))
        .await;
    let detail = server.wait_for_end(&short.about.id).await;
    let transcript = std::path::PathBuf::from(&detail.transcript_path);
    assert!(transcript.exists());
    let running = server.exec("sleep 30").await;
    eventually("the finished session to expire", || async {
        let (status, _) = server.get(&format!("/sessions/{}", short.about.id)).await;
        (status == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    // The session leaves the list before its files go (so no reader finds it half removed).
    eventually("the transcript to go with the record", || async {
        (!transcript.exists()).then_some(())
    })
    .await;
    // Running sessions are never expired; interactive ones have their own TTL.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        server.detail(&running.about.id).await.info.now.status,
        SessionStatus::Running
    );
    server.wait_for_end(&long.about.id).await;
    assert_eq!(
        server.get(&format!("/sessions/{}", long.about.id)).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn remove_forgets_a_finished_session_and_refuses_a_running_one() {
    let server = Server::start_with(&[("KILL_GRACE_MS", "500")]);
    let running = server.exec("sleep 30").await;
    let (status, body) = server
        .delete(&format!("/sessions/{}?remove=true", running.about.id))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["error"].as_str().unwrap().contains("kill it first"),
        "{body}"
    );
    assert_eq!(
        server.detail(&running.about.id).await.info.now.status,
        SessionStatus::Running,
        "a refused removal leaves the session alone"
    );
    let (status, _) = server
        .delete(&format!("/sessions/{}?remove=maybe", running.about.id))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A finished session whose background job lives on: the job goes, then the session.
    let (finished, bg) = start_lingering_job(&server).await;
    let transcript =
        std::path::PathBuf::from(server.detail(&finished.about.id).await.transcript_path);
    let (status, body) = server
        .delete(&format!("/sessions/{}?remove=true", finished.about.id))
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"killed": true, "removed": true}))
    );
    assert!(!process_alive(bg), "the job it left was killed first");
    for path in ["", "/transcript", "/recording"] {
        let (status, _) = server
            .get(&format!("/sessions/{}{path}", finished.about.id))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path} still answers");
    }
    assert!(!transcript.exists(), "the transcript goes with the record");
    let (_, list) = server.get("/sessions").await;
    assert!(!list.to_string().contains(&finished.about.id));
    // Its record went with it (the same removal as expiry, whose restart test covers the disk).
    let (status, _) = server
        .delete(&format!("/sessions/{}?remove=true", finished.about.id))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server
        .delete(&format!("/sessions/{}", running.about.id))
        .await;
}

#[tokio::test]
async fn max_sessions_counts_running_sessions() {
    let server = Server::start_with(&[("MAX_SESSIONS", "2")]);
    let a = server.exec("sleep 30").await;
    server.exec("sleep 30").await;
    let (status, body) = server.post("/sessions", json!({"task": "sleep 30"})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"], "Max sessions reached (2). 2 running.");
    server.delete(&format!("/sessions/{}", a.about.id)).await;
    server.wait_for_end(&a.about.id).await;
    server.exec("true").await;
}

#[tokio::test]
async fn shutdown_kills_everything_and_closes_viewers() {
    let mut server = Server::start_with(&[("KILL_GRACE_MS", "1000")]);
    let busy = server.exec("while :; do echo busy; sleep 0.01; done").await;
    // Output is flowing before the stop (on a loaded machine the shell may not have started).
    server
        .wait_for(&busy.about.id, "two lines of output", |d| {
            d.screen.lines.iter().filter(|l| l.contains("busy")).count() > 1
        })
        .await;
    let (stubborn, bg) = start_stubborn_job(&server).await;
    let mut viewer = server.raw_ws(&busy.about.id, "").await;
    next_json(&mut viewer).await;

    let took = server.terminate();
    assert!(
        took < Duration::from_millis(1000 + 2000),
        "shutdown took {took:?}"
    );
    assert!(!process_alive(busy.about.pid));
    assert!(!process_alive(stubborn.about.pid));
    assert!(!process_alive(bg));
    // The viewer got a close frame (after the exit message).
    let closed = loop {
        match next_frame(&mut viewer).await {
            Frame::Closed(code) => break code,
            _ => continue,
        }
    };
    assert!(matches!(closed, Some(1000) | Some(1001)), "{closed:?}");
    // The transcript is complete on disk.
    let transcript = server
        .data_dir
        .join("transcripts")
        .join(format!("{}.log", busy.about.id));
    let text = std::fs::read_to_string(transcript).unwrap();
    assert!(
        text.starts_with("busy\r\n") && text.matches("busy").count() > 1,
        "{text:?}"
    );
}

#[tokio::test]
async fn refused_configuration_does_not_start() {
    for (key, value, message) in [
        ("AGENT_WS_TOKEN", "CHANGE_ME_AGENT_WS_TOKEN", "placeholder"),
        ("AGENT_WS_TOKEN", "short", "shorter than 16"),
        ("PORT", "eighty", "PORT"),
        ("MAX_SESSIONS", "-1", "MAX_SESSIONS"),
        ("SESSION_TTL_MS", "1h", "SESSION_TTL_MS"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_monkeyproof"))
            .env("PORT", "0")
            .env("AGENT_WS_TOKEN", TOKEN)
            .env(
                "MONKEYPROOF_DATA_DIR",
                std::env::temp_dir().join("mp-refused"),
            )
            .env(key, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{key}={value} started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{key}={value}: {stderr}");
    }
}

#[tokio::test]
async fn a_generated_token_is_printed_once_and_works() {
    let data_dir = std::env::temp_dir().join(format!("mp-gen-{}", std::process::id()));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_monkeyproof"))
        .env("PORT", "0")
        .env_remove("AGENT_WS_TOKEN")
        .env("MONKEYPROOF_DATA_DIR", &data_dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addr = String::new();
    let token = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(a) = line.split("listening on http://").nth(1) {
            addr = a.to_owned();
        }
        if let Some(t) = line.trim().strip_prefix("token: ") {
            break t.to_owned();
        }
    };
    assert!(token.len() >= 40);
    let client = reqwest::Client::new();
    let ok = client
        .get(format!("http://{addr}/sessions"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(data_dir);
}

/// Starts a shell whose background job ignores SIGTERM and SIGHUP; returns it and the job's pid.
/// Job control is on, so the job has its own process group, as in an interactive shell.
async fn start_stubborn_job(server: &Server) -> (monkeyproof::protocol::SessionInfo, u32) {
    let session = server
        .exec("set -m; (trap '' TERM HUP; sleep 1000) & echo bg=$!; wait")
        .await;
    let detail = server.wait_for_screen(&session.about.id, "bg=").await;
    let line = detail
        .screen
        .lines
        .iter()
        .find(|l| l.starts_with("bg="))
        .unwrap();
    (session, line[3..].trim().parse().unwrap())
}

#[tokio::test]
async fn the_pty_is_the_programs_controlling_terminal() {
    let server = Server::start();
    // Field 7 of /proc/PID/stat is the controlling terminal (0: none).
    let session = server
        .exec(
            "echo ctty=$(cut -d' ' -f7 /proc/$$/stat) sid=$(cut -d' ' -f6 /proc/$$/stat) pid=$$; \
             trap 'echo got-winch' WINCH; while :; do sleep 0.05; done",
        )
        .await;
    let detail = server.wait_for_screen(&session.about.id, "ctty=").await;
    let line = detail
        .screen
        .lines
        .iter()
        .find(|l| l.starts_with("ctty="))
        .unwrap()
        .clone();
    assert!(!line.starts_with("ctty=0 "), "{line}");
    let sid = line
        .split(" sid=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert_eq!(
        line.split(" pid=").nth(1).unwrap(),
        sid,
        "the program leads its own session: {line}"
    );
    // A resize reaches the program as SIGWINCH, Ctrl-C as SIGINT: both need the PTY to be the
    // controlling terminal of the program's session.
    let (status, _) = server
        .post(
            &format!("/sessions/{}/resize", session.about.id),
            json!({ "cols": 100, "rows": 30 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    server.wait_for_screen(&session.about.id, "got-winch").await;
    let (status, _) = server
        .post(
            &format!("/sessions/{}/input", session.about.id),
            json!({ "keys": ["C-c"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let ended = server.wait_for_end(&session.about.id).await;
    assert_eq!(
        ended.info.now.signal.as_deref(),
        Some("SIGINT"),
        "{:?}",
        ended.info
    );
}

/// Starts a session whose program exits at once, leaving a background job that ignores SIGHUP
/// and SIGTERM; returns it, once ended, and the job's pid.
async fn start_lingering_job(server: &Server) -> (monkeyproof::protocol::SessionInfo, u32) {
    let session = server
        .exec("trap '' HUP TERM; sleep 1000 & echo bg=$!; exit 0")
        .await;
    let detail = server.wait_for_end(&session.about.id).await;
    let transcript = String::from_utf8(server.transcript(&session.about.id).await).unwrap();
    let bg = transcript
        .lines()
        .find_map(|l| l.trim().strip_prefix("bg="))
        .unwrap_or_else(|| panic!("no bg= in {transcript:?}"))
        .parse()
        .unwrap();
    assert_eq!(detail.info.now.status, SessionStatus::Exited);
    assert!(process_alive(bg));
    (session, bg)
}

/// Makes the next process get `pid` (as root): writes `pid - 1` to `ns_last_pid` and starts a
/// session leader (`setsid sleep`), retrying if something else took the pid first.
fn start_session_leader_as(pid: u32) -> std::process::Child {
    for _ in 0..200 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).unwrap();
        let mut child = std::process::Command::new("setsid")
            .args(["sleep", "1000"])
            .spawn()
            .unwrap();
        if child.id() == pid {
            return child;
        }
        let _ = child.kill();
        let _ = child.wait();
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("could not get pid {pid}");
}

#[tokio::test]
async fn delete_never_signals_a_process_that_reused_a_finished_sessions_pid() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: arranging pid reuse needs root (ns_last_pid)");
        return;
    }
    let server = Server::start_with(&[("KILL_GRACE_MS", "300")]);
    let session = server.exec("exit 0").await;
    server.wait_for_end(&session.about.id).await;
    assert!(!process_alive(session.about.pid));
    // A stranger gets the finished session's pid, as its own session and group id.
    let mut stranger = start_session_leader_as(session.about.pid);
    eventually("the stranger to lead its own session", || async {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", session.about.pid)).ok()?;
        let sid = stat
            .rsplit(')')
            .next()?
            .split_whitespace()
            .nth(3)?
            .to_owned();
        (sid == session.about.pid.to_string()).then_some(())
    })
    .await;

    let (status, _) = server
        .delete(&format!("/sessions/{}", session.about.id))
        .await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300 + 1500)).await;
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "DELETE signalled a process that merely reused the pid"
    );
    assert_eq!(
        server.detail(&session.about.id).await.info.now.status,
        SessionStatus::Exited
    );
    let _ = stranger.kill();
    let _ = stranger.wait();

    // Background jobs that outlive the program are still reached while they live.
    let (lingering, bg) = start_lingering_job(&server).await;
    server
        .delete(&format!("/sessions/{}", lingering.about.id))
        .await;
    eventually("the background job to die", || async {
        (!process_alive(bg)).then_some(())
    })
    .await;
    no_zombies_left(&server).await;
}

#[tokio::test]
async fn max_sessions_counts_finished_sessions_whose_jobs_live() {
    let server = Server::start_with(&[("MAX_SESSIONS", "2"), ("KILL_GRACE_MS", "300")]);
    let (first, first_bg) = start_lingering_job(&server).await;
    let (_second, second_bg) = start_lingering_job(&server).await;
    let (status, body) = server.post("/sessions", json!({"task": "sleep 30"})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let (_, banner) = server.get("/").await;
    assert_eq!(banner["running"], 2);
    // Once a job is gone (killed here), its session's slot is free again.
    server
        .delete(&format!("/sessions/{}", first.about.id))
        .await;
    eventually("the first job to die", || async {
        (!process_alive(first_bg)).then_some(())
    })
    .await;
    eventually("a slot to free up", || async {
        let (status, _) = server.post("/sessions", json!({"task": "true"})).await;
        (status == StatusCode::CREATED).then_some(())
    })
    .await;
    // A job that ends by itself frees its slot too (found within a second).
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(second_bg as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    eventually("the second slot to free up", || async {
        let (_, banner) = server.get("/").await;
        (banner["running"] == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn shutdown_kills_the_jobs_a_finished_session_left() {
    let mut server = Server::start_with(&[("KILL_GRACE_MS", "300")]);
    let (_session, bg) = start_lingering_job(&server).await;
    server.terminate();
    assert!(
        !process_alive(bg),
        "shutdown left a finished session's job running"
    );
}

#[tokio::test]
async fn a_second_signal_cuts_a_stop_short_and_still_kills_every_session() {
    // A grace far longer than the test: only the second signal can end the stop in time.
    let mut server = Server::start_with(&[("KILL_GRACE_MS", "60000")]);
    let (stubborn, bg) = start_stubborn_job(&server).await;
    let pid = nix::unistd::Pid::from_raw(server.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(process_alive(bg), "the job ignores TERM; its grace runs");
    let second = std::time::Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    server.child.wait().unwrap();
    assert!(
        second.elapsed() < Duration::from_secs(3),
        "the stop went on for {:?} after the second signal",
        second.elapsed()
    );
    // What the stop had not killed yet was SIGKILLed on the way out, and the keeper, holding
    // nothing, goes too.
    eventually("the session's processes to be gone", || async {
        (!process_alive(bg) && !process_alive(stubborn.about.pid)).then_some(())
    })
    .await;
    eventually("the keeper to exit", || async {
        keepers_of(&server.data_dir).is_empty().then_some(())
    })
    .await;
}
