//! What a server started again on the same data directory knows of the sessions of earlier
//! runs: finished ones are listed as they were (status, exit, screen, transcript) until their
//! TTL, a session whose end was never recorded is listed as killed, and two servers never share
//! one data directory.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use nix::sys::signal::Signal;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// What a client can see of a finished session, less what changes with time or viewers.
async fn seen(server: &Server, id: &str) -> Value {
    let (status, mut detail) = server.get(&format!("/sessions/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    for volatile in ["idleMs", "activity", "wsClients"] {
        detail.as_object_mut().unwrap().remove(volatile);
    }
    let mut screens = Vec::new();
    for format in ["text", "ansi"] {
        let res = server
            .get_text(&format!(
                "/sessions/{id}/screen?format={format}&scrollback=50"
            ))
            .await;
        screens.push(Value::String(res.text().await.unwrap()));
    }
    let (_, json_screen) = server
        .get(&format!("/sessions/{id}/screen?format=json&scrollback=50"))
        .await;
    json!({
        "detail": detail,
        "screens": screens,
        "jsonScreen": json_screen,
        "transcript": String::from_utf8_lossy(&server.transcript(id).await),
    })
}

fn restart_in(data_dir: std::path::PathBuf, env: &[(&str, &str)]) -> Server {
    Server::launch(Launch {
        env,
        data_dir: Some(data_dir),
        ..Launch::default()
    })
}

#[tokio::test]
async fn finished_sessions_are_listed_after_a_restart_as_they_were() {
    let first = Server::start();
    let plain = first
        .exec("printf 'first line\\nsecond line\\n'; exit 3")
        .await;
    // Ends on the alternate screen with a title, colours and the cursor keys switched.
    let full_screen = first
        .exec(
            "printf '\\033[?1049h\\033[?1h\\033]0;my title\\007\\033[3;5H\\033[31mfull \
             screen\\033[0m'; sleep 0.2",
        )
        .await;
    let killed = first
        .create(
            json!({"task": "echo killed-soon; sleep 30", "owner": "me", "labels": ["x"],
            "name": "the build"}),
        )
        .await;
    first.wait_for_screen(&killed.about.id, "killed-soon").await;
    first
        .delete(&format!("/sessions/{}", killed.about.id))
        .await;
    let mut before = Vec::new();
    for id in [&plain.about.id, &full_screen.about.id, &killed.about.id] {
        first.wait_for_end(id).await;
        before.push(seen(&first, id).await);
    }
    let (_, list_before) = first.get("/sessions").await;
    assert_eq!(before[0]["detail"]["exitCode"], 3);
    assert_eq!(
        before[1]["jsonScreen"]["alternateScreen"], true,
        "{}",
        before[1]
    );
    assert_eq!(before[2]["detail"]["status"], "killed");
    assert_eq!(before[2]["detail"]["name"], "the build");

    let second = restart_in(first.stop_keeping_data(Signal::SIGTERM), &[]);
    let (_, list_after) = second.get("/sessions").await;
    let ids = |list: &Value| -> Vec<Value> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].clone())
            .collect()
    };
    assert_eq!(
        ids(&list_after),
        ids(&list_before),
        "same sessions, same order"
    );
    for (id, before) in [&plain.about.id, &full_screen.about.id, &killed.about.id]
        .iter()
        .zip(&before)
    {
        assert_eq!(&seen(&second, id).await, before, "session {id} as it was");
    }
    // A viewer of a restored session gets its final screen and its end.
    let mut ws = second.raw_ws(&full_screen.about.id, "").await;
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["type"], "hello", "{hello}");
    let drawn = read_raw_until(&mut ws, |bytes| contains(bytes, "full screen")).await;
    assert!(
        contains(&drawn, "\x1b[?1049h"),
        "{:?}",
        String::from_utf8_lossy(&drawn)
    );
    // Restored sessions take no input and no resize.
    let (status, _) = second
        .post(
            &format!("/sessions/{}/input", plain.about.id),
            json!({"input": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // And the new server runs sessions of its own beside them.
    let fresh = second.exec("echo after-restart").await;
    second
        .wait_for_screen(&fresh.about.id, "after-restart")
        .await;
}

#[tokio::test]
async fn finished_sessions_still_expire_after_a_restart() {
    let first = Server::start();
    let session = first.exec("echo short-lived").await;
    first.wait_for_end(&session.about.id).await;
    let transcript = first
        .data_dir
        .join("transcripts")
        .join(format!("{}.log", session.about.id));
    assert!(transcript.exists());

    let dir = first.stop_keeping_data(Signal::SIGTERM);
    let second = restart_in(dir.clone(), &[("SESSION_TTL_MS", "300")]);
    eventually("the session to expire", || async {
        let (status, _) = second.get(&format!("/sessions/{}", session.about.id)).await;
        (status == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    // The session leaves the list before its files go (so no reader finds it half removed).
    eventually("its transcript to go with it", || async {
        (!transcript.exists()).then_some(())
    })
    .await;

    let third = restart_in(second.stop_keeping_data(Signal::SIGTERM), &[]);
    assert_eq!(third.get("/sessions").await.1, json!([]), "and its record");
    let _ = dir;
}

#[tokio::test]
async fn a_session_whose_server_and_keeper_were_killed_is_listed_as_killed_with_its_output() {
    let first = Server::start();
    let session = first.exec("echo before-the-crash; sleep 30").await;
    first
        .wait_for_screen(&session.about.id, "before-the-crash")
        .await;
    let dir = first.stop_keeping_data(Signal::SIGKILL);
    // As after a reboot: with the keeper gone too, the program loses its terminal and is hung
    // up.
    for keeper in keepers_of(&dir) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(keeper as i32), Signal::SIGKILL).unwrap();
    }
    eventually("the orphaned program to be hung up", || async {
        (!process_alive(session.about.pid)).then_some(())
    })
    .await;

    let second = restart_in(dir, &[]);
    let detail = second.detail(&session.about.id).await;
    assert_eq!(
        detail.info.now.status,
        monkeyproof::engine::SessionStatus::Killed
    );
    assert_eq!(
        (detail.info.now.exit_code, detail.info.now.signal.clone()),
        (None, None)
    );
    assert!(detail.info.now.ended_at.is_some());
    assert!(
        detail
            .screen
            .lines
            .iter()
            .any(|l| l.contains("before-the-crash")),
        "{:?}",
        detail.screen.lines
    );
    assert!(contains(
        &second.transcript(&session.about.id).await,
        "before-the-crash"
    ));
    // Nothing of it is signalled any more: its pid may be anyone's now.
    let (status, _) = second
        .delete(&format!("/sessions/{}", session.about.id))
        .await;
    assert_eq!(status, StatusCode::OK);
    let fresh = second.exec("echo after-restart").await;
    second
        .wait_for_screen(&fresh.about.id, "after-restart")
        .await;
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let first = Server::start();
    let session = first.exec("echo still-here; sleep 30").await;
    let second = Command::new(env!("CARGO_BIN_EXE_monkeyproof"))
        .env("PORT", "0")
        .env("AGENT_WS_TOKEN", TOKEN)
        .env("MONKEYPROOF_DATA_DIR", &first.data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || second.wait_with_output()),
    )
    .await
    .expect("the second server gives up at once")
    .unwrap()
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("another monkeyproof server (pid {})", first.pid()))
            && stderr.contains(first.data_dir.to_str().unwrap()),
        "{stderr}"
    );
    // The first one goes on undisturbed.
    first.wait_for_screen(&session.about.id, "still-here").await;
    assert_eq!(
        first.detail(&session.about.id).await.info.now.status,
        monkeyproof::engine::SessionStatus::Running
    );
}

fn keep(data_dir: Option<std::path::PathBuf>) -> Server {
    Server::launch(Launch {
        env: &[("MONKEYPROOF_ON_EXIT", "keep")],
        data_dir,
        ..Launch::default()
    })
}

#[tokio::test]
async fn running_sessions_outlive_a_stop_and_the_next_server_adopts_them() {
    let first = keep(None);
    let shell = first.exec("exec bash --norc --noprofile -i").await;
    first.wait_for_screen(&shell.about.id, "bash-").await;
    first
        .post(
            &format!("/sessions/{}/input", shell.about.id),
            json!({"input": "echo before-the-stop", "enter": true}),
        )
        .await;
    first
        .wait_for_screen(&shell.about.id, "before-the-stop")
        .await;
    let vim = first
        .create(json!({"task": "vim -u NONE -i NONE -N", "cols": 90, "rows": 30}))
        .await;
    first
        .wait_for_screen(&vim.about.id, "VIM - Vi IMproved")
        .await;
    // Writes while no server runs: more than a PTY buffers, so it blocks until read again.
    let writer = first
        .exec("sleep 1; seq 1 30000; echo writer-done; sleep 60")
        .await;
    // Resized after printing a line wider than its new width: drawn again with its sizes in
    // order, the screen is the same.
    let narrow = first.exec("printf '%070d\\n' 7; sleep 60").await;
    first.wait_for_screen(&narrow.about.id, "0000007").await;
    let (status, _) = first
        .post(
            &format!("/sessions/{}/resize", narrow.about.id),
            json!({"cols": 40, "rows": 10}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Ends while no server runs: the keeper keeps its status for the next one.
    let ender = first.exec("sleep 1; echo ending; exit 7").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, list_before) = first.get("/sessions").await;
    let mut before = Vec::new();
    for id in [&shell.about.id, &vim.about.id, &narrow.about.id] {
        before.push(seen_running(&first, id).await);
    }

    let printed = first.printed.clone();
    let dir = first.stop_keeping_data(Signal::SIGTERM);
    assert!(
        process_alive(shell.about.pid)
            && process_alive(vim.about.pid)
            && process_alive(writer.about.pid)
    );
    let printed = printed.lock().unwrap().join("\n");
    assert!(
        printed.contains(" session(s) keep running, held by the keeper")
            && printed.contains("MONKEYPROOF_ON_EXIT=kill"),
        "{printed}"
    );
    assert_eq!(keepers_of(&dir).len(), 1, "one keeper holds them");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let second = keep(Some(dir.clone()));
    let (_, list_after) = second.get("/sessions").await;
    let summary = |list: &Value| -> Vec<Value> {
        list.as_array()
            .unwrap()
            .iter()
            .filter(|s| s["id"] != ender.about.id.as_str())
            .map(|s| json!([s["id"], s["pid"], s["status"], s["cols"], s["rows"]]))
            .collect()
    };
    assert_eq!(summary(&list_after), summary(&list_before));
    for (id, before) in [&shell.about.id, &vim.about.id, &narrow.about.id]
        .iter()
        .zip(&before)
    {
        assert_eq!(
            &seen_running(&second, id).await,
            before,
            "session {id} as it was"
        );
    }
    let ended = second.wait_for_end(&ender.about.id).await;
    assert_eq!(
        (ended.info.now.status, ended.info.now.exit_code),
        (monkeyproof::engine::SessionStatus::Exited, Some(7))
    );
    assert!(ended.screen.lines.iter().any(|l| l == "ending"));
    // What the program wrote meanwhile, exactly once, after what came before.
    second
        .wait_for_screen(&writer.about.id, "writer-done")
        .await;
    let expected: String = (1..=30000).map(|n| format!("{n}\r\n")).collect();
    let transcript = String::from_utf8(second.transcript(&writer.about.id).await).unwrap();
    assert_eq!(transcript, format!("{expected}writer-done\r\n"));
    // The adopted shell is driven as before, and killed as before.
    second
        .post(
            &format!("/sessions/{}/input", shell.about.id),
            json!({"input": "echo after-the-restart", "enter": true}),
        )
        .await;
    second
        .wait_for_screen(&shell.about.id, "after-the-restart")
        .await;
    second.delete(&format!("/sessions/{}", vim.about.id)).await;
    let ended = second.wait_for_end(&vim.about.id).await;
    assert_eq!(
        ended.info.now.status,
        monkeyproof::engine::SessionStatus::Killed
    );
    assert!(!process_alive(vim.about.pid));
    // Killing the rest on this stop ends them and the keeper.
    let dir = second.stop_keeping_data(Signal::SIGTERM);
    let last = Server::launch(Launch {
        data_dir: Some(dir.clone()),
        ..Launch::default()
    });
    assert_eq!(
        last.detail(&shell.about.id).await.info.now.status,
        monkeyproof::engine::SessionStatus::Running
    );
    let dir = last.stop_keeping_data(Signal::SIGTERM);
    eventually("the sessions and the keeper to end", || async {
        (!process_alive(shell.about.pid)
            && !process_alive(writer.about.pid)
            && keepers_of(&dir).is_empty())
        .then_some(())
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// What a client can see of a running session, less what changes with time or viewers.
async fn seen_running(server: &Server, id: &str) -> Value {
    let (_, json_screen) = server
        .get(&format!("/sessions/{id}/screen?format=json&scrollback=50"))
        .await;
    let ansi = server
        .get_text(&format!("/sessions/{id}/screen?format=ansi"))
        .await
        .text()
        .await
        .unwrap();
    let detail = server.detail(id).await;
    json!({
        "screen": json_screen,
        "ansi": ansi,
        "outputBytes": detail.info.now.output_bytes,
        "pid": detail.info.about.pid,
        "createdAt": detail.info.about.created_at,
    })
}

#[tokio::test]
async fn the_keeper_exits_once_it_holds_nothing() {
    let first = keep(None);
    let session = first.exec("echo done").await;
    first.wait_for_end(&session.about.id).await;
    let dir = first.data_dir.clone();
    assert_eq!(keepers_of(&dir).len(), 1);
    let dir = {
        let _ = &dir;
        first.stop_keeping_data(Signal::SIGTERM)
    };
    eventually("the keeper to exit", || async {
        keepers_of(&dir).is_empty().then_some(())
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_crash_of_the_server_ends_no_session_and_loses_or_repeats_no_output() {
    // Output in bursts between pauses, so the server is killed during floods and in between.
    let task = "for i in $(seq 1 200000); do echo $i; \
                [ $((i % 10000)) = 0 ] && sleep 0.15; done; echo all-written; sleep 60";
    let mut server = keep(None);
    let session = server.exec(task).await;
    let cycles: u64 = std::env::var("CRASH_CYCLES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    for cycle in 0..cycles {
        tokio::time::sleep(Duration::from_millis(100 + 37 * cycle)).await;
        let dir = server.stop_keeping_data(Signal::SIGKILL);
        assert!(
            process_alive(session.about.pid),
            "cycle {cycle}: the program runs on"
        );
        server = keep(Some(dir));
        let detail = server.detail(&session.about.id).await;
        assert_eq!(detail.info.about.pid, session.about.pid);
        assert_eq!(
            detail.info.now.status,
            monkeyproof::engine::SessionStatus::Running
        );
    }
    server
        .wait_for_screen(&session.about.id, "all-written")
        .await;
    let expected: String = (1..=200000).map(|n| format!("{n}\r\n")).collect();
    let transcript = String::from_utf8(server.transcript(&session.about.id).await).unwrap();
    if transcript != format!("{expected}all-written\r\n") {
        let first_difference = transcript
            .bytes()
            .zip(expected.bytes())
            .position(|(a, b)| a != b);
        panic!(
            "transcript of {} bytes differs from seq's {} at byte {first_difference:?}: {:?}",
            transcript.len(),
            expected.len(),
            first_difference
                .map(|at| &transcript[at.saturating_sub(20)..(at + 20).min(transcript.len())])
        );
    }
    server
        .delete(&format!("/sessions/{}", session.about.id))
        .await;
    server.wait_for_end(&session.about.id).await;
}

#[tokio::test]
async fn a_viewer_resumes_across_a_restart_with_no_gap_and_no_duplicate() {
    let first = keep(None);
    let session = first
        .exec(
            "for i in $(seq 1 20); do echo line-$i; sleep 0.05; done; sleep 1; \
             for i in $(seq 21 40); do echo line-$i; done; echo all-done; sleep 0.5",
        )
        .await;
    let mut viewer = first.raw_ws(&session.about.id, "?since=0").await;
    next_json(&mut viewer).await;
    let part1 = read_raw_until(&mut viewer, |b| contains(b, "line-10\r\n")).await;
    // The program goes on writing while no server runs.
    let dir = first.stop_keeping_data(Signal::SIGTERM);
    let second = keep(Some(dir));
    let since = part1.len();
    let mut viewer = second
        .raw_ws(&session.about.id, &format!("?since={since}"))
        .await;
    let hello = next_json(&mut viewer).await;
    assert_eq!(
        (hello["offset"].clone(), hello["snapshot"].clone()),
        (json!(since), json!(false)),
        "{hello}"
    );
    let part2 = read_raw_until_closed(&mut viewer).await;
    let mut joined = part1;
    joined.extend_from_slice(&part2);
    assert_eq!(joined, second.transcript(&session.about.id).await);
    assert_each_line_once(&joined, 40);
}

#[tokio::test]
async fn an_agent_thinking_through_a_restart_is_driven_on_as_before() {
    let first = keep(None);
    let agent = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fake_agent.py");
    let session = first
        .create(
            json!({"type": "interactive", "command": "python3", "args": [agent], "task": "hello"}),
        )
        .await;
    let id = session.about.id.clone();
    first.wait_for_screen(&id, "ANSWER: 1 lines").await;
    let task = "Refactor the parser.\nKeep the tests green.\nReport what changed.";
    first
        .post(
            &format!("/sessions/{id}/input"),
            json!({"text": task, "paste": true}),
        )
        .await;
    first.wait_for_screen(&id, "thinking").await;
    // Stopped while the agent works; it answers while no server runs.
    let dir = first.stop_keeping_data(Signal::SIGTERM);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = keep(Some(dir));
    // The feed announces the takeover.
    let mut feed = second
        .http
        .get(second.url(&format!("/sessions/{id}/events?lastEventId=0")))
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let mut seen = String::new();
    while !seen.contains("event: adopted") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), feed.next())
            .await
            .expect("no adopted event within 10 s")
            .expect("the feed ended")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let detail = second
        .wait_for_screen(&id, "ANSWER: 3 lines, first='Refactor the parser.'")
        .await;
    assert!(detail.screen.alternate_screen);
    // The new server knows the agent asked for bracketed paste: a paste arrives as one message.
    second
        .post(
            &format!("/sessions/{id}/input"),
            json!({"text": "Now the docs.\nAnd the changelog.", "paste": true}),
        )
        .await;
    second
        .wait_for_screen(&id, "ANSWER: 2 lines, first='Now the docs.'")
        .await;
    second
        .post(&format!("/sessions/{id}/input"), json!({"keys": ["C-c"]}))
        .await;
    let ended = second.wait_for_end(&id).await;
    assert_eq!(ended.info.now.exit_code, Some(0));
    assert!(!ended.screen.alternate_screen);
}

#[tokio::test]
async fn a_crash_of_the_keeper_leaves_the_running_server_serving() {
    let server = keep(None);
    let session = server.exec("cat").await;
    let keeper = keepers_of(&server.data_dir)[0];
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(keeper as i32), Signal::SIGKILL).unwrap();
    eventually("the keeper to be gone", || async {
        (!process_alive(keeper)).then_some(())
    })
    .await;
    // The server still holds the PTY: input and output go on.
    server
        .post(
            &format!("/sessions/{}/input", session.about.id),
            json!({"input": "still-here", "enter": true}),
        )
        .await;
    server
        .wait_for_screen(&session.about.id, "still-here")
        .await;
    // Its end is seen, without a status (its parent is init now), and nothing of it is
    // signalled any more.
    server
        .delete(&format!("/sessions/{}", session.about.id))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        process_alive(session.about.pid),
        "DELETE signals nothing without the keeper"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(session.about.pid as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    let ended = server.wait_for_end(&session.about.id).await;
    assert_eq!(
        (ended.info.now.exit_code, ended.info.now.signal),
        (None, None)
    );
    // The next session starts a new keeper.
    let fresh = server.exec("echo with-a-new-keeper").await;
    server
        .wait_for_screen(&fresh.about.id, "with-a-new-keeper")
        .await;
    assert_eq!(keepers_of(&server.data_dir).len(), 1);
}

#[tokio::test]
async fn programs_are_the_keepers_children_and_a_dead_launcher_is_started_again() {
    let server = Server::start();
    let first = server.exec("echo first; sleep 30").await;
    server.wait_for_screen(&first.about.id, "first").await;
    let keeper = keepers_of(&server.data_dir)[0];
    // Started by the launcher, yet the keeper's own child: it reads the exit and reaps it.
    assert_eq!(
        parent_and_state(first.about.pid).map(|(ppid, _)| ppid),
        Some(keeper)
    );
    let launchers: Vec<u32> = children_of(keeper)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c == b"monkeyproof\0keeper-launcher\0")
        })
        .collect();
    assert_eq!(launchers.len(), 1, "one launcher, beside the programs");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(launchers[0] as i32),
        Signal::SIGKILL,
    )
    .unwrap();
    let second = server.exec("echo second").await;
    server.wait_for_screen(&second.about.id, "second").await;
    assert_eq!(
        server
            .wait_for_end(&second.about.id)
            .await
            .info
            .now
            .exit_code,
        Some(0)
    );
    assert!(
        !children_of(keeper).contains(&launchers[0]),
        "the dead launcher was reaped"
    );
    // A program that cannot start is refused as before, and leaves no zombie.
    let (status, body) = server
        .post(
            "/sessions",
            json!({"task": "x", "command": "/nonexistent/program"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(zombie_children(keeper).is_empty());
}

#[tokio::test]
async fn a_data_dir_too_long_for_the_keepers_socket_is_refused_at_start() {
    let dir = std::env::temp_dir().join("d".repeat(110));
    let out = Command::new(env!("CARGO_BIN_EXE_monkeyproof"))
        .env("PORT", "0")
        .env("AGENT_WS_TOKEN", TOKEN)
        .env("MONKEYPROOF_DATA_DIR", &dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("too long a path for a Unix socket")
            && stderr.contains("MONKEYPROOF_DATA_DIR"),
        "{stderr}"
    );
}

#[tokio::test]
async fn only_the_server_of_the_data_dir_may_talk_to_the_keeper() {
    use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};
    let server = keep(None);
    let session = server.exec("sleep 1; exit 5").await;
    // Another process of the same user connects and says hello: it is closed at once, and the
    // server's own connection (which learns the session's exit) is undisturbed.
    let socket = nix::sys::socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    let addr = UnixAddr::new(&server.data_dir.join("keeper.sock")).unwrap();
    use std::os::fd::AsRawFd;
    nix::sys::socket::connect(socket.as_raw_fd(), &addr).unwrap();
    let _ = nix::sys::socket::send(
        socket.as_raw_fd(),
        br#"{"type":"hello","version":1}"#,
        MsgFlags::MSG_NOSIGNAL,
    );
    let mut buf = [0u8; 256];
    let got = nix::sys::socket::recv(socket.as_raw_fd(), &mut buf, MsgFlags::empty());
    assert!(
        matches!(got, Ok(0) | Err(_)),
        "the keeper answered a stranger: {got:?}"
    );
    let ended = server.wait_for_end(&session.about.id).await;
    assert_eq!(ended.info.now.exit_code, Some(5));
}
