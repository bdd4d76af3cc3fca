//! Hardening: lock-out after repeated authentication failures, the Host allow-list, refusing
//! unsafe configurations, WebSocket limits, hostile program output, escaping processes.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn repeated_auth_failures_lock_out_that_address_only() {
    let server = Server::start();
    let attacker = client_from("127.0.0.2");
    let bystander = client_from("127.0.0.3");
    let url = server.url("/sessions");
    for i in 1..monkeyproof::api::auth::MAX_AUTH_FAILURES {
        let res = attacker
            .get(&url)
            .bearer_auth(format!("guess-{i:016}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let res = attacker
        .get(&url)
        .bearer_auth("guess-last-000000")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Locked out: even the right token is refused, so guessing during the lock-out tells nothing.
    let res = attacker.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.json::<serde_json::Value>().await.unwrap()["error"].is_string());
    // Others are unaffected.
    let res = bystander.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = bystander.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_foreign_host_name_is_refused_on_loopback() {
    let server = Server::start_with(&[("MONKEYPROOF_ALLOWED_HOSTS", "mybox.internal")]);
    let port = server.addr.rsplit(':').next().unwrap();
    for (host, status) in [
        (format!("evil.example:{port}"), StatusCode::FORBIDDEN),
        ("127.0.0.1.nip.io".to_owned(), StatusCode::FORBIDDEN),
        (format!("localhost:{port}"), StatusCode::OK),
        (format!("127.0.0.1:{port}"), StatusCode::OK),
        (format!("[::1]:{port}"), StatusCode::OK),
        (format!("MyBox.Internal:{port}"), StatusCode::OK),
    ] {
        let res = server
            .http
            .get(server.url("/sessions"))
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{host}");
    }
    // A rebinding page cannot open a WebSocket either, token or not.
    let session = server.exec("sleep 30").await;
    let mut req = server.ws_request(&session.about.id, "", &[], Some(TOKEN));
    req.headers_mut()
        .insert("host", format!("evil.example:{port}").parse().unwrap());
    assert_eq!(server.ws_status(req).await, 403);
}

#[tokio::test]
async fn binding_beyond_loopback_needs_an_explicit_token() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_monkeyproof"))
        .env("PORT", "0")
        .env_remove("AGENT_WS_TOKEN")
        .env("MONKEYPROOF_BIND", "0.0.0.0")
        .env(
            "MONKEYPROOF_DATA_DIR",
            std::env::temp_dir().join("mp-bind-refused"),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("needs an explicit AGENT_WS_TOKEN"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("token:"));
}

#[tokio::test]
async fn the_environment_policy_lets_loader_variables_through() {
    // Whoever holds the token runs any program anyway, so variables are not filtered (see the
    // README's security section); only the server's own secret is removed.
    let server = Server::start();
    let session = server
        .create(json!({
            "task": "echo \"[$NODE_OPTIONS|$BASH_ENV|$LD_PRELOAD|${AGENT_WS_TOKEN:-unset}]\"",
            "env": {"NODE_OPTIONS": "--max-old-space-size=64", "BASH_ENV": "/dev/null", "LD_PRELOAD": ""},
        }))
        .await;
    let detail = server.wait_for_end(&session.about.id).await;
    assert!(
        detail
            .recent_output
            .contains("[--max-old-space-size=64|/dev/null||unset]"),
        "{}",
        detail.recent_output
    );
}

mod websocket_limits {
    use super::*;
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame as WireFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    async fn close_code_after(server: &Server, id: &str, messages: Vec<Message>) -> Option<u16> {
        let mut ws = server.raw_ws(id, "").await;
        next_json(&mut ws).await; // hello
        for message in messages {
            if ws.send(message).await.is_err() {
                break;
            }
        }
        loop {
            match next_frame(&mut ws).await {
                Frame::Closed(code) => return code,
                _ => continue,
            }
        }
    }

    #[tokio::test]
    async fn oversized_invalid_and_endless_messages_close_with_the_right_code() {
        let server = Server::start();
        let session = server.exec("cat > /dev/null").await;
        let id = &session.about.id;
        let big = Message::Binary(vec![b'x'; 2 * 1024 * 1024].into());
        assert_eq!(close_code_after(&server, id, vec![big]).await, Some(1009));

        let not_utf8 = WireFrame::message(vec![0xff, 0xfe, b'{'], OpCode::Data(Data::Text), true);
        assert_eq!(
            close_code_after(&server, id, vec![Message::Frame(not_utf8)]).await,
            Some(1007)
        );

        // A message fragmented forever is cut off at the same limit.
        let mut fragments = vec![Message::Frame(WireFrame::message(
            vec![b'a'; 64 * 1024],
            OpCode::Data(Data::Binary),
            false,
        ))];
        for _ in 0..40 {
            fragments.push(Message::Frame(WireFrame::message(
                vec![b'a'; 64 * 1024],
                OpCode::Data(Data::Continue),
                false,
            )));
        }
        assert_eq!(close_code_after(&server, id, fragments).await, Some(1009));

        // Empty messages are harmless; the session is still fine.
        let mut ws = server.raw_ws(id, "").await;
        next_json(&mut ws).await;
        ws.send(Message::Binary(Vec::new().into())).await.unwrap();
        ws.send(Message::Text("".into())).await.unwrap();
        loop {
            if let Frame::Json(msg) = next_frame(&mut ws).await
                && msg["type"] == "error"
            {
                break;
            }
        }
        assert_eq!(
            server.detail(id).await.info.now.status,
            monkeyproof::protocol::SessionStatus::Running
        );
    }
}

#[tokio::test]
async fn kill_reaches_jobs_that_trap_signals_and_children_that_called_setsid() {
    let server = Server::start_with(&[("KILL_GRACE_MS", "500")]);
    // A job that ignores HUP and TERM, and a child in a session of its own (its parent waits).
    let session = server
        .exec("set -m; (trap '' TERM HUP; sleep 1000) & echo job=$!; set +m; setsid sleep 1000 & echo own=$!; wait")
        .await;
    let detail = server.wait_for_screen(&session.about.id, "own=").await;
    let pid_of = |prefix: &str| -> u32 {
        let line = detail
            .screen
            .lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap();
        line[prefix.len()..].trim().parse().unwrap()
    };
    let (job, own) = (pid_of("job="), pid_of("own="));
    assert!(process_alive(job) && process_alive(own));
    server
        .delete(&format!("/sessions/{}", session.about.id))
        .await;
    eventually("the job and the setsid child to die", || async {
        (!process_alive(job) && !process_alive(own)).then_some(())
    })
    .await;
    no_zombies_left(&server).await;
}

#[tokio::test]
async fn hostile_output_is_survived_and_never_answered() {
    let server = Server::start();
    // Clipboard writes, a title report request, DECRQSS with a newline, a font query, a 10 MB
    // unterminated OSC (then ended), a malformed CSI and invalid UTF-8; then the program checks
    // that nothing was typed back at it.
    let task = r#"printf '\033]52;c;cm0gLXJmIC8K\007'; printf '\033[21t'; printf '\033P$q\nm\033\\'; printf '\033]50;?\007'; printf '\033]0;'; head -c 10000000 /dev/zero | tr '\0' a; printf '\007'; printf '\033[::::x\377\376\300 ok\n'; if read -t 1 -r reply; then echo "ANSWERED:$reply"; else echo SURVIVED; fi; sleep 30"#;
    let session = server.exec(task).await;
    let detail = server.wait_for_screen(&session.about.id, "SURVIVED").await;
    assert!(detail.screen.lines.iter().all(|l| !l.contains("ANSWERED")));
    assert!(detail.info.now.output_bytes > 10_000_000);
    // The title of a 10 MB OSC is bounded, and plain-text views hold no control characters.
    assert!(
        detail.info.now.title.len() < 4096,
        "title of {} bytes",
        detail.info.now.title.len()
    );
    let (_, text) = server
        .get(&format!(
            "/sessions/{}/screen?format=json",
            session.about.id
        ))
        .await;
    for line in text["lines"].as_array().unwrap() {
        assert!(
            !line.as_str().unwrap().chars().any(|c| c.is_control()),
            "{line}"
        );
    }
    assert!(
        !detail
            .recent_output
            .chars()
            .any(|c| c.is_control() && c != '\n')
    );
    // The server is still fine.
    let other = server.exec("echo still-serving").await;
    server
        .wait_for_screen(&other.about.id, "still-serving")
        .await;
}

#[tokio::test]
async fn the_audit_log_records_starts_ends_and_denials_but_never_the_token() {
    let server = Server::start_logging(&[]);
    let session = server
        .create(json!({"task": "exit 3", "owner": "auditor", "cwd": "/tmp"}))
        .await;
    server.wait_for_end(&session.about.id).await;
    let stranger = client_from("127.0.0.5");
    let res = stranger
        .get(server.url(&format!("/sessions?token={TOKEN}")))
        .bearer_auth("wrong-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let mut req = server.ws_request(&session.about.id, &format!("?token={TOKEN}"), &[], None);
    req.headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    assert_eq!(server.ws_status(req).await, 403);

    let log = eventually("the log lines", || async {
        let log = std::fs::read_to_string(server.log_path()).unwrap();
        log.contains("audit: session ended").then_some(log)
    })
    .await;
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in\n{log}"))
            .to_owned()
    };
    let started = line("audit: session started");
    for part in [
        session.about.id.as_str(),
        "client=127.0.0.1:",
        "auditor",
        "exit 3",
        "cwd=/tmp",
    ] {
        assert!(started.contains(part), "{part} missing: {started}");
    }
    let ended = line("audit: session ended");
    assert!(
        ended.contains("code=Some(3)") && ended.contains("auditor"),
        "{ended}"
    );
    assert!(line("denied: missing or wrong token").contains("client=127.0.0.5:"));
    line("WebSocket origin refused");
    assert!(!log.contains(TOKEN), "the token leaked into the log");
}

#[tokio::test]
async fn out_of_descriptors_is_503_and_recovers() {
    let server = Server::start_with_fd_limit(48);
    let mut started = Vec::new();
    let refused = loop {
        let (status, body) = server.post("/sessions", json!({"task": "sleep 30"})).await;
        match status {
            StatusCode::CREATED => started.push(body["id"].as_str().unwrap().to_owned()),
            other => break (other, body),
        }
        assert!(started.len() < 40, "the descriptor limit was never reached");
    };
    assert_eq!(refused.0, StatusCode::SERVICE_UNAVAILABLE, "{}", refused.1);
    assert!(refused.1["error"].is_string());
    assert!(!started.is_empty());
    // Existing sessions still work, and freeing some lets new ones start.
    let (status, _) = server.get(&format!("/sessions/{}", started[0])).await;
    assert_eq!(status, StatusCode::OK);
    for id in &started[..3] {
        server.delete(&format!("/sessions/{id}")).await;
        server.wait_for_end(id).await;
    }
    eventually("a session to start again", || async {
        let (status, _) = server.post("/sessions", json!({"task": "echo back"})).await;
        (status == StatusCode::CREATED).then_some(())
    })
    .await;
}

#[tokio::test]
async fn exits_of_every_kind_keep_their_status_and_final_output() {
    let server = Server::start();
    // Floods and exits at once: every byte is there, and the exit follows the last one.
    let flood = server
        .exec("head -c 3000000 /dev/zero | tr '\\0' x; echo; echo FINAL-LINE; exit 9")
        .await;
    // Closes its terminal but keeps running for a while, then exits.
    let detached = server
        .exec("echo closing; exec 0<&- 1>&- 2>&-; sleep 1; exit 4")
        .await;
    let killed_itself = server.exec("echo bye; kill -TERM $$; sleep 5").await;

    let detail = server.wait_for_end(&flood.about.id).await;
    assert_eq!(detail.info.now.exit_code, Some(9));
    let transcript = server.transcript(&flood.about.id).await;
    assert_eq!(transcript.len(), 3_000_000 + 2 + 12);
    assert!(transcript.ends_with(b"\r\nFINAL-LINE\r\n"));
    assert_eq!(detail.info.now.output_bytes, transcript.len() as u64);

    let detail = server.wait_for_end(&detached.about.id).await;
    assert_eq!(detail.info.now.exit_code, Some(4));
    assert!(detail.recent_output.contains("closing"));

    let detail = server.wait_for_end(&killed_itself.about.id).await;
    assert_eq!(detail.info.now.signal.as_deref(), Some("SIGTERM"));
    assert_eq!(detail.info.now.exit_code, None);
}

fn rss_kb(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_viewer_that_never_reads_costs_bounded_memory() {
    let server = Server::start();
    let session = server
        .exec("sleep 0.5; timeout 4 yes 'a line of output that repeats'; echo FLOOD-OVER; sleep 30")
        .await;
    let _stalled = server.raw_ws(&session.about.id, "?since=0").await; // never read
    let mut reader = server.raw_ws(&session.about.id, "?since=0").await;
    let before = rss_kb(server.pid());
    let mut peak = before;
    let mut received = 0usize;
    loop {
        match next_frame(&mut reader).await {
            Frame::Bytes(b) => {
                received += b.len();
                if contains(&b, "FLOOD-OVER") {
                    break;
                }
            }
            Frame::Closed(code) => panic!("closed {code:?}"),
            Frame::Json(_) => {}
        }
        peak = peak.max(rss_kb(server.pid()));
    }
    let total = server.detail(&session.about.id).await.info.now.output_bytes;
    eprintln!("flood of {total} bytes: RSS {before} kB -> peak {peak} kB; reader got {received}");
    assert!(
        total > 20_000_000,
        "the flood was too small to tell: {total}"
    );
    // The ring (1 MB), socket buffers and a frame per viewer: far below what the flood weighs.
    assert!(
        peak - before < 48 * 1024,
        "RSS grew by {} kB",
        peak - before
    );
    assert!(received > 1_000_000);
    let transcript = server.transcript(&session.about.id).await;
    assert_eq!(transcript.len() as u64, total);
}

/// Starts a program that never reads its input; returns it and its input path. In raw mode a
/// terminal that is not read stops taking input once its queue is full.
async fn start_program_that_never_reads(
    server: &Server,
) -> (monkeyproof::protocol::SessionInfo, String) {
    let stuck = server
        .exec("stty raw -echo; echo ready; exec sleep 600")
        .await;
    server.wait_for_screen(&stuck.about.id, "ready").await;
    let path = format!("/sessions/{}/input", stuck.about.id);
    (stuck, path)
}

#[tokio::test]
async fn input_to_a_program_that_never_reads_holds_up_nobody_else() {
    let server = Server::start();
    let (stuck, path) = start_program_that_never_reads(&server).await;
    let big = "x".repeat(900_000);
    let (stuck_input, ()) = tokio::join!(server.post(&path, json!({ "input": big })), async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        // Everything else carries on: the server answers, another session takes input.
        let (status, _) = server.get(&format!("/sessions/{}", stuck.about.id)).await;
        assert_eq!(status, StatusCode::OK);
        let other = server.exec("exec cat").await;
        let (status, _) = server
            .post(
                &format!("/sessions/{}/input", other.about.id),
                json!({ "input": "still typing", "enter": true }),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        server
            .wait_for_screen(&other.about.id, "still typing")
            .await;
        // Killing the session that does not read ends the write waiting on it.
        let (status, _) = server
            .delete(&format!("/sessions/{}", stuck.about.id))
            .await;
        assert_eq!(status, StatusCode::OK);
    });
    let (status, body) = stuck_input;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn answers_a_program_never_reads_are_dropped_not_queued() {
    let server = Server::start();
    // 26 MB of status queries (ESC [ 5 n), every one owed an answer, from a program that never
    // reads its input.
    let session = server
        .exec(
            "python3 -c 'import os\nq = b\"\\x1b[5n\" * 4096\nfor _ in range(1600): os.write(1, q)'; \
             echo QUERIES-DONE; sleep 30",
        )
        .await;
    let before = rss_kb(server.pid());
    let mut peak = before;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !server
        .detail(&session.about.id)
        .await
        .recent_output
        .contains("QUERIES-DONE")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the queries never ended"
        );
        peak = peak.max(rss_kb(server.pid()));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let total = server.detail(&session.about.id).await.info.now.output_bytes;
    eprintln!("{total} bytes of queries: RSS {before} kB -> peak {peak} kB");
    assert!(total > 26_000_000, "{total}");
    assert!(
        peak - before < 48 * 1024,
        "RSS grew by {} kB",
        peak - before
    );
    // The session still works.
    let (status, _) = server
        .delete(&format!("/sessions/{}", session.about.id))
        .await;
    assert_eq!(status, StatusCode::OK);
    server.wait_for_end(&session.about.id).await;
}

#[tokio::test]
async fn input_a_program_never_reads_is_bounded() {
    let server = Server::start();
    let (stuck, path) = start_program_that_never_reads(&server).await;
    let big = || json!({ "input": "x".repeat(900_000) });
    let in_background = || {
        let (http, url) = (server.http.clone(), server.url(&path));
        tokio::spawn(async move { http.post(url).json(&big()).send().await.unwrap().status() })
    };
    // The first fills the terminal and waits; the second waits behind it; then the queue is full.
    let first = in_background();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let second = in_background();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, body) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        server.post(&path, big()),
    )
    .await
    .expect("input beyond the bound was queued, not refused");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not reading its input"),
        "{body}"
    );
    // A viewer's keystrokes are refused the same way, and its connection stays up.
    let mut ws = server.raw_ws(&stuck.about.id, "").await;
    next_json(&mut ws).await; // hello
    send_bytes(&mut ws, &vec![b'y'; 1_500_000 / 2]).await;
    send_bytes(&mut ws, &vec![b'y'; 1_500_000 / 2]).await;
    let refused = loop {
        match next_frame(&mut ws).await {
            Frame::Json(v) if v["type"] == "error" => break v,
            Frame::Closed(code) => panic!("closed {code:?}"),
            _ => {}
        }
    };
    assert!(refused["error"].as_str().unwrap().contains("not reading"));
    // Killing the session ends the writes waiting on it.
    server
        .delete(&format!("/sessions/{}", stuck.about.id))
        .await;
    assert_eq!(first.await.unwrap(), StatusCode::CONFLICT);
    assert_eq!(second.await.unwrap(), StatusCode::CONFLICT);
}

/// A file holding `content`, with `mode`.
fn write_file(name: &str, content: &str, mode: u32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::temp_dir().join(format!("mp-{name}-{}", std::process::id()));
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[tokio::test]
async fn the_token_comes_from_a_file_and_on_the_command_line_it_is_warned_about() {
    let file = write_file("token", &format!("{TOKEN}\n"), 0o600);
    let server = Server::launch(Launch {
        env: &[("MONKEYPROOF_TOKEN_FILE", file.to_str().unwrap())],
        without_env: &["AGENT_WS_TOKEN"],
        log: true,
        ..Launch::default()
    });
    assert_eq!(server.get("/sessions").await.0, StatusCode::OK);
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", server.pid())).unwrap();
    assert!(!contains(&cmdline, TOKEN));
    // The program in a session learns neither the token nor where it is kept.
    let session = server.exec("env; sleep 30").await;
    let detail = server.wait_for_screen(&session.about.id, "PATH=").await;
    assert!(!detail.recent_output.contains("MONKEYPROOF_TOKEN_FILE"));
    assert!(!server.log_text().contains("--token puts"));
    drop(server);

    let server = Server::launch(Launch {
        args: &["--token", TOKEN],
        without_env: &["AGENT_WS_TOKEN"],
        log: true,
        ..Launch::default()
    });
    assert_eq!(server.get("/sessions").await.0, StatusCode::OK);
    assert!(
        server
            .log_text()
            .contains("--token puts the secret in /proc/PID/cmdline"),
        "{}",
        server.log_text()
    );
    drop(server);

    // A token file others may read works, with a warning; an empty one and both ways at once
    // are refused.
    let loose = write_file("token-loose", TOKEN, 0o644);
    let server = Server::launch(Launch {
        args: &["--token-file", loose.to_str().unwrap()],
        without_env: &["AGENT_WS_TOKEN"],
        log: true,
        ..Launch::default()
    });
    assert!(server.log_text().contains("can be read by others"));
    drop(server);
    let empty = write_file("token-empty", "\n", 0o600);
    for (args, message) in [
        (vec!["--token-file", empty.to_str().unwrap()], "is empty"),
        (
            vec!["--token", TOKEN, "--token-file", file.to_str().unwrap()],
            "cannot be used with",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_monkeyproof"))
            .env("PORT", "0")
            .env_remove("AGENT_WS_TOKEN")
            .env(
                "MONKEYPROOF_DATA_DIR",
                std::env::temp_dir().join("mp-refused"),
            )
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    for path in [file, loose, empty] {
        let _ = std::fs::remove_file(path);
    }
}

#[tokio::test]
async fn requests_without_credentials_or_from_foreign_pages_never_lock_anyone_out() {
    let server = Server::start();
    let port = server.addr.rsplit(':').next().unwrap().to_owned();
    let local = client_from("127.0.0.1");
    let url = server.url("/sessions");
    for _ in 0..3 * monkeyproof::api::auth::MAX_AUTH_FAILURES {
        // What a page on another site can make a browser send: no credentials at all…
        let res = local.get(&url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        // …or a WebSocket with a guessed token, which the browser marks with the page's origin.
        let mut req = server.ws_request("nope", "?token=guess-guess-guess", &[], None);
        req.headers_mut()
            .insert("origin", "https://evil.example".parse().unwrap());
        assert_eq!(server.ws_status(req).await, 401);
    }
    let res = local.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "the right token was locked out"
    );
    // Wrong tokens from a local program still count (documented), in any scheme's case.
    for i in 0..monkeyproof::api::auth::MAX_AUTH_FAILURES {
        let res = local
            .get(&url)
            .header("authorization", format!("bearer wrong-{i:016}"))
            .send()
            .await
            .unwrap();
        assert_ne!(res.status(), StatusCode::OK);
    }
    let res = local.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let _ = port;
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let server = Server::start();
    let client = reqwest::Client::new();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let res = client
            .get(server.url("/sessions"))
            .header("authorization", format!("{scheme} {TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{scheme}");
    }
    let res = client
        .get(server.url("/sessions"))
        .header("authorization", format!("Basic {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn the_lock_out_tracks_at_most_its_bound_of_addresses() {
    use monkeyproof::api::auth::{Auth, MAX_TRACKED_ADDRESSES};
    let auth = Auth::new(TOKEN.into(), Vec::new(), None);
    for i in 0..(MAX_TRACKED_ADDRESSES as u32 * 2) {
        let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        auth.record_failure(ip);
        assert!(auth.tracked_addresses() <= MAX_TRACKED_ADDRESSES);
    }
    assert_eq!(auth.tracked_addresses(), MAX_TRACKED_ADDRESSES);
}

/// Whether the server refuses to start on `data_dir`, with a message containing `message`.
fn refuses_data_dir(data_dir: &std::path::Path, message: &str) {
    // Under `timeout`: a server that accepts the directory would run on.
    let out = std::process::Command::new("timeout")
        .args(["10", env!("CARGO_BIN_EXE_monkeyproof")])
        .env("PORT", "0")
        .env("AGENT_WS_TOKEN", TOKEN)
        .env("MONKEYPROOF_DATA_DIR", data_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started on {}", data_dir.display());
    assert!(stderr.contains(message), "{}: {stderr}", data_dir.display());
}

#[tokio::test]
async fn a_data_dir_others_own_or_may_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let base = std::env::temp_dir().join(format!("mp-dirs-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700)).unwrap();

    let writable = base.join("writable");
    std::fs::create_dir_all(&writable).unwrap();
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o777)).unwrap();
    refuses_data_dir(&writable, "writable by others");

    let in_open_parent = writable.join("data");
    refuses_data_dir(&in_open_parent, "which others may write to");

    if nix::unistd::geteuid().is_root() {
        let foreign = base.join("foreign");
        std::fs::create_dir_all(foreign.join("transcripts")).unwrap();
        for dir in [&foreign, &foreign.join("transcripts")] {
            std::os::unix::fs::chown(dir, Some(65534), Some(65534)).unwrap();
        }
        refuses_data_dir(&foreign, "owned by uid 65534");
        let link = base.join("link");
        std::os::unix::fs::symlink(&foreign, &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
        refuses_data_dir(&link, "symlink made by uid 65534");
    }

    // A good one is used, and named at start.
    let good = base.join("good");
    let server = Server::launch(Launch {
        data_dir: Some(good.clone()),
        ..Launch::default()
    });
    let mode = std::fs::metadata(good.join("transcripts"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    drop(server);
    let _ = std::fs::remove_dir_all(&base);
}

#[tokio::test]
async fn a_transcript_swapped_for_a_symlink_is_not_followed() {
    let server = Server::start();
    let session = server.exec("echo mine").await;
    let detail = server.wait_for_end(&session.about.id).await;
    let secret = write_file("secret", "root only", 0o600);
    let transcript = std::path::PathBuf::from(&detail.transcript_path);
    std::fs::remove_file(&transcript).unwrap();
    std::os::unix::fs::symlink(&secret, &transcript).unwrap();
    let res = server
        .http
        .get(server.url(&format!("/sessions/{}/transcript", session.about.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = res.text().await.unwrap();
    assert!(!body.contains("root only"), "{body}");
    assert!(body.contains("\"error\""), "{body}");
    let _ = std::fs::remove_file(secret);
}

#[tokio::test]
async fn the_data_dir_is_named_at_start_and_logs_to_a_file_are_plain() {
    let server = Server::start_logging(&[]);
    assert_eq!(server.announced_data_dir.as_ref(), Some(&server.data_dir));
    let session = server.exec("echo hi").await;
    server.wait_for_end(&session.about.id).await;
    let log = server.log_text();
    assert!(log.contains("audit: session started"), "{log}");
    assert!(!log.contains('\u{1b}'), "colours in a log file: {log:?}");
}

#[tokio::test]
async fn a_handler_that_panics_answers_500_json_and_the_connection_lives_on() {
    use std::sync::Arc;

    use monkeyproof::api::connections::{self, Limits};
    use monkeyproof::api::{AppState, auth::Auth, layered};
    use monkeyproof::engine::{Engine, EngineConfig};

    let data_dir = std::env::temp_dir().join(format!("mp-panic-{}", std::process::id()));
    let engine = Engine::new(EngineConfig {
        data_dir: data_dir.clone(),
        max_sessions: 1,
        output_buffer_lines: 10,
        session_ttl: std::time::Duration::from_secs(60),
        interactive_ttl: std::time::Duration::from_secs(60),
        kill_grace: std::time::Duration::from_secs(1),
        env_remove: Vec::new(),
        busy_window: std::time::Duration::from_secs(1),
        max_finished: 10,
        default_limits: None,
    })
    .unwrap();
    let state = AppState {
        engine: Arc::new(engine),
        presets: Arc::new(monkeyproof::presets::Presets::load(None).unwrap()),
        auth: Arc::new(Auth::new(TOKEN.into(), Vec::new(), None)),
        output_buffer_lines: 10,
        ws_ping_interval: std::time::Duration::from_secs(20),
        shutdown: tokio_util::sync::CancellationToken::new(),
    };
    async fn buggy() -> &'static str {
        panic!("a bug in a handler")
    }
    let boom = axum::Router::new()
        .route("/boom", axum::routing::get(buggy))
        .route("/fine", axum::routing::get(|| async { "fine" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let limits = Limits::within_descriptors(
        1024,
        0,
        100,
        std::time::Duration::from_secs(10),
        std::time::Duration::from_secs(10),
    );
    tokio::spawn(connections::serve(
        listener,
        layered(boom, state),
        limits,
        stop.clone(),
    ));
    let client = reqwest::Client::new();
    let res = client
        .get(format!("http://{addr}/boom"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body, json!({"error": "internal error"}));
    // The same kept-alive client goes on being served.
    let res = client
        .get(format!("http://{addr}/fine"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    stop.cancel();
    let _ = std::fs::remove_dir_all(data_dir);
}

#[tokio::test]
async fn finished_sessions_keep_their_screen_and_a_tail_in_memory_the_rest_on_disk() {
    let server = Server::start_with(&[("MAX_SESSIONS", "20")]);
    // ~1.3 MB of output each, at the interactive size (200 columns: the costliest screen).
    let flood = "python3 -c 'import sys\nfor i in range(13000): print(f\"{i:06} \" + \"x\" * 93)'; \
                 echo LAST-LINE";
    let run = |n: usize| {
        let server = &server;
        async move {
            let mut ids = Vec::new();
            for _ in 0..n {
                let session = server
                    .create(json!({"task": flood, "cols": 200, "rows": 50}))
                    .await;
                ids.push(session.about.id);
            }
            for id in &ids {
                server.wait_for_end(id).await;
            }
            ids
        }
    };
    // Warm up to the same concurrency, so reused allocations and glibc's cache of thread stacks
    // are in `before` already.
    for _ in 0..3 {
        run(10).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before = rss_kb(server.pid());
    let mut last = Vec::new();
    for _ in 0..6 {
        last = run(10).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let after = rss_kb(server.pid());
    let per_session = (after.saturating_sub(before)) / 60;
    eprintln!("60 more finished sessions: RSS {before} kB -> {after} kB ({per_session} kB each)");
    // About 100 kB measured on a quiet machine (allocator noise included); a live one costs
    // ~1.5 MB (the 1 MB ring and a 200-column vt100 model).
    assert!(
        per_session < 500,
        "a finished session keeps {per_session} kB"
    );

    // What was dropped from memory is still served, from the transcript.
    let id = &last[0];
    let detail = server.detail(id).await;
    assert!(detail.info.now.output_bytes > 1_300_000);
    assert!(
        detail.recent_output.ends_with("LAST-LINE"),
        "{}",
        &detail.recent_output[detail.recent_output.len() - 100..]
    );
    assert_eq!(
        detail.recent_output.lines().count(),
        2000,
        "OUTPUT_BUFFER_SIZE lines"
    );
    assert!(detail.screen.lines.iter().any(|l| l.contains("LAST-LINE")));
    let mut compat = server.compat_ws(id).await;
    let catchup = next_json(&mut compat).await;
    assert_eq!(catchup["type"], "catchup");
    let data = catchup["data"].as_str().unwrap();
    assert!(
        data.len() > 900_000 && data.contains("LAST-LINE"),
        "{}",
        data.len()
    );
    let transcript = server.transcript(id).await;
    assert_eq!(transcript.len() as u64, detail.info.now.output_bytes);
}

#[tokio::test]
async fn only_the_newest_finished_sessions_are_kept_beyond_the_cap() {
    let server = Server::start_with(&[("MONKEYPROOF_MAX_FINISHED_SESSIONS", "3")]);
    let running = server.exec("sleep 30").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let session = server.exec(&format!("echo {i}")).await;
        server.wait_for_end(&session.about.id).await;
        ids.push(session.about.id);
    }
    eventually("the oldest finished sessions to go", || async {
        let (_, list) = server.get("/sessions").await;
        let kept: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect();
        (kept.len() == 4).then_some(kept)
    })
    .await;
    let (_, list) = server.get("/sessions").await;
    let kept: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(kept, [running.about.id.as_str(), &ids[2], &ids[3], &ids[4]]);
    assert_eq!(
        server.get(&format!("/sessions/{}", ids[0])).await.0,
        StatusCode::NOT_FOUND
    );
}
