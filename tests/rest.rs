//! REST API: every route's success and error cases, against the real server and real PTYs.

mod common;

use common::*;
use monkeyproof::protocol::{PresetInfo, SessionInfo, SessionStatus};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn health_banner_and_presets() {
    let server = Server::start();
    let res = reqwest::get(server.url("/health")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"ok": true}));

    let (status, banner) = server.get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(banner["name"], "monkeyproof");
    assert_eq!(banner["status"], "operational");
    assert!(banner["version"].is_string());

    let presets: Vec<PresetInfo> = server
        .http
        .get(server.url("/presets"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = presets.iter().map(|p| p.name.as_str()).collect();
    for expected in [
        "claude",
        "claude-sonnet",
        "claude-opus",
        "codex",
        "codex-auto",
        "claude-interactive",
        "claude-interactive-sonnet",
        "claude-interactive-opus",
    ] {
        assert!(
            names.contains(&expected),
            "missing preset {expected}: {names:?}"
        );
    }
    let codex_auto = presets.iter().find(|p| p.name == "codex-auto").unwrap();
    assert_eq!(codex_auto.command, "codex");
    assert_eq!(codex_auto.args, ["exec", "--full-auto"]);
    // Every field of a preset is listed.
    let (_, raw) = server.get("/presets").await;
    for preset in raw.as_array().unwrap() {
        let mut keys: Vec<&str> = preset
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "args",
                "command",
                "description",
                "name",
                "taskDelivery",
                "type"
            ],
            "{preset}"
        );
        assert_eq!(preset["taskDelivery"], "argument");
    }
}

#[tokio::test]
async fn every_route_but_health_needs_the_token() {
    let server = Server::start();
    let session = server.exec("sleep 30").await;
    let id = &session.about.id;
    let routes = [
        ("GET", "/".to_owned()),
        ("GET", "/presets".to_owned()),
        ("GET", "/sessions".to_owned()),
        ("POST", "/sessions".to_owned()),
        ("GET", format!("/sessions/{id}")),
        ("DELETE", format!("/sessions/{id}")),
        ("POST", format!("/sessions/{id}/input")),
        ("POST", format!("/sessions/{id}/resize")),
        ("GET", format!("/sessions/{id}/transcript")),
        ("GET", format!("/sessions/{id}/ws")),
        ("GET", "/sessions/no-such-id".to_owned()),
        ("GET", "/no-such-route".to_owned()),
    ];
    // Each route from its own loopback address, so the failures stay under the lock-out limit.
    for (i, (method, path)) in routes.iter().enumerate() {
        let anonymous = client_from(&format!("127.0.0.{}", 10 + i));
        for auth in [
            None,
            Some("Bearer wrong-token-0123456789"),
            Some(TOKEN),
            Some("Basic x"),
        ] {
            let mut req = anonymous
                .request(method.parse().unwrap(), server.url(path))
                .header("upgrade", "websocket")
                .header("connection", "upgrade")
                .json(&json!({"task": "echo should-not-run", "input": "x"}));
            if let Some(value) = auth {
                req = req.header("authorization", value);
            }
            let res = req.send().await.unwrap();
            assert_eq!(
                res.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {auth:?}"
            );
            assert_eq!(
                res.json::<Value>().await.unwrap(),
                json!({"error": "Unauthorized"})
            );
        }
    }
    // A wrong token in the query is refused on WebSocket upgrades too.
    let req = server.ws_request(id, "?token=wrong-token-0123456789", &[], None);
    assert_eq!(server.ws_status(req).await, 401);
    let req = server.ws_request(id, "", &["monkeyproof.token.wrong-token-0123"], None);
    assert_eq!(server.ws_status(req).await, 401);
    // The query token does not open plain REST routes.
    let res = client_from("127.0.0.99")
        .get(server.url(&format!("/sessions?token={TOKEN}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Nothing above started or killed anything.
    let (_, list) = server.get("/sessions").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(
        server.detail(id).await.info.now.status,
        SessionStatus::Running
    );
}

#[tokio::test]
async fn exec_reports_tty_size_and_exit_code() {
    let server = Server::start();
    let session = server
        .create(json!({"task": "tty; stty size; echo done; exit 7", "cols": 100, "rows": 30}))
        .await;
    assert_eq!(session.now.status, SessionStatus::Running);
    assert_eq!((session.now.cols, session.now.rows), (100, 30));
    assert_eq!(
        session.about.command,
        "/bin/sh -lc 'tty; stty size; echo done; exit 7'"
    );
    assert!(
        session.about.id.len() >= 20
            && session
                .about
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    );
    assert!(session.about.created_at.ends_with('Z'));

    let detail = server.wait_for_end(&session.about.id).await;
    assert_eq!(detail.info.now.status, SessionStatus::Exited);
    assert_eq!(detail.info.now.exit_code, Some(7));
    assert_eq!(detail.info.now.signal, None);
    assert!(
        detail.recent_output.contains("/dev/pts/"),
        "{}",
        detail.recent_output
    );
    assert!(detail.recent_output.contains("30 100"));
    assert!(detail.info.now.output_lines >= 3);
    assert!(detail.info.now.ended_at.is_some());
    assert!(
        detail.screen.lines[2].starts_with("done"),
        "{:?}",
        detail.screen.lines
    );
}

#[tokio::test]
async fn signal_death_is_reported() {
    let server = Server::start();
    let session = server.exec("echo before; kill -KILL $$").await;
    let detail = server.wait_for_end(&session.about.id).await;
    assert_eq!(detail.info.now.status, SessionStatus::Exited);
    assert_eq!(detail.info.now.exit_code, None);
    assert_eq!(detail.info.now.signal.as_deref(), Some("SIGKILL"));
    assert!(detail.recent_output.contains("before"));
}

#[tokio::test]
async fn create_refuses_bad_input_with_clear_errors() {
    let server = Server::start();
    let file = server.data_dir.join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (json!({}), StatusCode::BAD_REQUEST, "task is required"),
        (
            json!({"task": ""}),
            StatusCode::BAD_REQUEST,
            "task is required",
        ),
        (
            json!({"task": "x", "type": "shell"}),
            StatusCode::BAD_REQUEST,
            "type/mode must be \"exec\", \"print\", or \"interactive\"",
        ),
        (
            json!({"task": "x", "mode": "bogus"}),
            StatusCode::BAD_REQUEST,
            "type/mode must be",
        ),
        (
            json!({"task": "x", "preset": "claude"}),
            StatusCode::BAD_REQUEST,
            "preset is only valid for type \"print\" or \"interactive\"; omit preset for exec sessions",
        ),
        (
            json!({"task": "x", "type": "print", "preset": "nope"}),
            StatusCode::BAD_REQUEST,
            "Unknown preset \"nope\". Known presets: claude,",
        ),
        (
            json!({"task": "x", "cols": 0}),
            StatusCode::BAD_REQUEST,
            "cols and rows",
        ),
        (
            json!({"task": "x", "rows": -3}),
            StatusCode::BAD_REQUEST,
            "cols and rows",
        ),
        (
            json!({"task": "x", "cols": 100000}),
            StatusCode::BAD_REQUEST,
            "cols and rows",
        ),
        (
            json!({"task": "x", "cols": "wide"}),
            StatusCode::BAD_REQUEST,
            "cols",
        ),
        (
            json!({"task": "x", "cwd": "/no/such/dir"}),
            StatusCode::BAD_REQUEST,
            "cwd does not exist: /no/such/dir",
        ),
        (
            json!({"task": "x", "cwd": file}),
            StatusCode::BAD_REQUEST,
            "cwd is not a directory",
        ),
        (
            json!({"task": "x", "command": "/no/such/program"}),
            StatusCode::BAD_REQUEST,
            "cannot start /no/such/program",
        ),
        (
            json!({"task": "x", "type": "print", "command": "no-such-program-xyz"}),
            StatusCode::BAD_REQUEST,
            "cannot start no-such-program-xyz",
        ),
        (
            json!({"task": "x", "surprise": 1}),
            StatusCode::BAD_REQUEST,
            "surprise",
        ),
        (json!({"task": 5}), StatusCode::BAD_REQUEST, "invalid type"),
        (
            json!({"task": "x", "env": {"A=B": "c"}}),
            StatusCode::BAD_REQUEST,
            "env",
        ),
    ];
    for (body, status, message) in cases {
        let (got_status, got) = server.post("/sessions", body.clone()).await;
        assert_eq!(got_status, status, "{body}: {got}");
        let error = got["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(message),
            "{body}: {error:?} lacks {message:?}"
        );
    }
    // Malformed JSON and oversized bodies.
    let res = server
        .http
        .post(server.url("/sessions"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.json::<Value>().await.unwrap()["error"].is_string());
    // An oversized body is refused from its Content-Length, before it is read.
    let (status, body) = raw_post_headers(&server, "/sessions", 2 * 1024 * 1024).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    // None of that left a session or a transcript behind.
    let (_, list) = server.get("/sessions").await;
    assert_eq!(list, json!([]));
    let transcripts = std::fs::read_dir(server.data_dir.join("transcripts"))
        .unwrap()
        .count();
    assert_eq!(transcripts, 0);
}

#[tokio::test]
async fn cwd_env_owner_and_labels() {
    let server = Server::start();
    let dir = server.data_dir.join("work");
    std::fs::create_dir_all(&dir).unwrap();
    let session = server
        .create(json!({
            "task": "pwd; echo \"foo=$FOO term=$TERM token=${AGENT_WS_TOKEN:-none}\"",
            "cwd": dir,
            "env": {"FOO": "bar baz"},
            "owner": "alice",
            "labels": [" Build ", "build", "", "CI", "x".repeat(80)],
        }))
        .await;
    assert_eq!(session.about.owner.as_deref(), Some("alice"));
    assert_eq!(session.about.labels[..2], ["build", "ci"]);
    assert_eq!(session.about.labels[2].len(), 64);
    let detail = server.wait_for_end(&session.about.id).await;
    assert!(
        detail.recent_output.contains(dir.to_str().unwrap()),
        "{}",
        detail.recent_output
    );
    assert!(
        detail
            .recent_output
            .contains("foo=bar baz term=xterm-256color token=none"),
        "{}",
        detail.recent_output
    );
    assert!(!detail.transcript_path.starts_with(dir.to_str().unwrap()));
    assert!(
        detail
            .transcript_path
            .starts_with(server.data_dir.to_str().unwrap())
    );

    // A relative cwd resolves against the server's cwd; the default is $HOME.
    let relative = server.create(json!({"task": "pwd", "cwd": "."})).await;
    assert_eq!(
        relative.about.cwd,
        std::env::current_dir().unwrap().to_str().unwrap()
    );
    let home = server.exec("pwd").await;
    assert_eq!(home.about.cwd, std::env::var("HOME").unwrap());
    server.wait_for_end(&relative.about.id).await;
    server.wait_for_end(&home.about.id).await;

    let other = server
        .create(json!({"task": "sleep 30", "owner": "bob", "labels": ["deploy"]}))
        .await;
    let list = |query: &'static str| server.get_path(format!("/sessions{query}"));
    let ids = |body: &Value| -> Vec<String> {
        serde_json::from_value::<Vec<SessionInfo>>(body.clone())
            .unwrap()
            .into_iter()
            .map(|s| s.about.id)
            .collect()
    };
    assert_eq!(ids(&list("?owner=bob").await.1), [other.about.id.as_str()]);
    assert_eq!(
        ids(&list("?label=BUILD").await.1),
        [session.about.id.as_str()]
    );
    assert_eq!(
        ids(&list("?status=running").await.1),
        [other.about.id.as_str()]
    );
    assert_eq!(ids(&list("").await.1).len(), 4);
    assert!(ids(&list("?status=killed").await.1).is_empty());
    // Each entry is the session's info as its own route shows it (the list keeps the fixed
    // half of each entry's JSON from the first listing on: this is the second).
    let info_keys: Vec<String> = json!(other).as_object().unwrap().keys().cloned().collect();
    for entry in list("").await.1.as_array().unwrap() {
        let id = entry["id"].as_str().unwrap();
        let mut own = server.get_path(format!("/sessions/{id}")).await.1;
        let mut entry = entry.clone();
        let mut keys: Vec<String> = entry.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        let mut expected = info_keys.clone();
        expected.sort();
        assert_eq!(keys, expected);
        for changing in ["idleMs", "activity"] {
            entry.as_object_mut().unwrap().remove(changing);
        }
        own.as_object_mut()
            .unwrap()
            .retain(|key, _| entry.get(key).is_some());
        assert_eq!(entry, own);
    }
    let (status, body) = list("?status=zombie").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"],
        "status must be \"running\", \"exited\", or \"killed\""
    );
}

#[tokio::test]
async fn input_reaches_cat_and_an_interactive_bash() {
    let server = Server::start();
    let cat = server.exec("cat").await;
    let path = format!("/sessions/{}/input", cat.about.id);
    let (status, body) = server
        .post(&path, json!({"input": "hello-cat", "enter": true}))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"sent": true})));
    // The terminal echoes the line and cat prints it again.
    server
        .wait_for(&cat.about.id, "cat's echo", |d| {
            d.screen
                .lines
                .iter()
                .filter(|l| l.contains("hello-cat"))
                .count()
                == 2
        })
        .await;
    let (status, body) = server.post(&path, json!({"enter": true})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "input is required");
    let (status, _) = server
        .post("/sessions/nope/input", json!({"input": "x"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Ctrl-D ends cat; input to an ended session is a conflict.
    server.post(&path, json!({"input": "\u{4}"})).await;
    let ended = server.wait_for_end(&cat.about.id).await;
    assert_eq!(ended.info.now.exit_code, Some(0));
    let (status, body) = server.post(&path, json!({"input": "late"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // An interactive session sends Enter by default.
    let bash = server
        .create(
            json!({"task": "-i", "type": "interactive", "command": "bash",
                       "args": ["--norc", "--noprofile"]}),
        )
        .await;
    assert_eq!((bash.now.cols, bash.now.rows), (200, 50));
    let (status, _) = server
        .post(
            &format!("/sessions/{}/input", bash.about.id),
            json!({"input": "echo $((6*7))-answer"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    server.wait_for_screen(&bash.about.id, "42-answer").await;
}

#[tokio::test]
async fn resize_reaches_the_program_and_the_screen() {
    let server = Server::start();
    let session = server
        .create(
            json!({"task": "stty size; read line; stty size; sleep 30", "cols": 90, "rows": 20}),
        )
        .await;
    server.wait_for_screen(&session.about.id, "20 90").await;
    let path = format!("/sessions/{}/resize", session.about.id);
    let (status, body) = server.post(&path, json!({"cols": 120, "rows": 40})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["cols"].clone(), body["rows"].clone()),
        (json!(120), json!(40))
    );
    server
        .post(
            &format!("/sessions/{}/input", session.about.id),
            json!({"input": "", "enter": true}),
        )
        .await;
    let detail = server.wait_for_screen(&session.about.id, "40 120").await;
    assert_eq!((detail.screen.cols, detail.screen.rows), (120, 40));
    assert_eq!(detail.screen.lines.len(), 40);

    for bad in [
        json!({"cols": 0, "rows": 10}),
        json!({"cols": 10, "rows": 5000}),
        json!({"cols": -1, "rows": 10}),
        json!({"cols": "x", "rows": 10}),
        json!({"cols": 10}),
    ] {
        let (status, body) = server.post(&path, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"].is_string());
    }
    // A one-column terminal is legal and does not break the screen model.
    let (status, _) = server.post(&path, json!({"cols": 1, "rows": 1})).await;
    assert_eq!(status, StatusCode::OK);
    server
        .post(
            &format!("/sessions/{}/input", session.about.id),
            json!({"input": "\u{4e2d}\u{6587}"}),
        )
        .await;
    assert_eq!(server.detail(&session.about.id).await.screen.cols, 1);
    let (status, _) = server
        .post("/sessions/nope/resize", json!({"cols": 10, "rows": 10}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn full_screen_program_shows_in_the_snapshot() {
    let server = Server::start();
    let file = server.data_dir.join("notes.txt");
    std::fs::write(&file, "first line of the file\nsecond line\n").unwrap();
    let session = server
        .create(
            json!({"task": format!("vim -u NONE -i NONE -N {}", file.display()), "cols": 80, "rows": 24}),
        )
        .await;
    let detail = server
        .wait_for_screen(&session.about.id, "first line of the file")
        .await;
    assert!(detail.screen.alternate_screen);
    assert_eq!(detail.screen.lines[1], "second line");
    assert!(
        detail.screen.lines[2].starts_with('~'),
        "{:?}",
        detail.screen.lines
    );
    assert!(
        detail.screen.lines[23].contains("notes.txt"),
        "{:?}",
        detail.screen.lines
    );
    // Quit vim: the main screen comes back.
    server
        .post(
            &format!("/sessions/{}/input", session.about.id),
            json!({"input": "\u{1b}:q!\r"}),
        )
        .await;
    let ended = server.wait_for_end(&session.about.id).await;
    assert!(!ended.screen.alternate_screen);
}

#[tokio::test]
async fn transcript_serves_bytes_from_an_offset() {
    let server = Server::start();
    // A two-byte character split across two writes (and so across PTY reads).
    let session = server
        .exec("printf 'caf\\303'; sleep 0.3; printf '\\251 ok\\n'; printf '\\342\\224'; sleep 0.3; printf '\\200 box\\n'")
        .await;
    server.wait_for_end(&session.about.id).await;
    let full = server.transcript(&session.about.id).await;
    assert_eq!(
        String::from_utf8(full.clone()).unwrap(),
        "café ok\r\n─ box\r\n"
    );

    let res = server
        .get_text(&format!(
            "/sessions/{}/transcript?since=5",
            session.about.id
        ))
        .await;
    let header = |name: &str| res.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("x-transcript-offset"), "5");
    assert_eq!(header("x-transcript-total-size"), full.len().to_string());
    assert_eq!(header("x-transcript-next-offset"), full.len().to_string());
    assert_eq!(res.bytes().await.unwrap(), full[5..]);

    let detail = server.detail(&session.about.id).await;
    assert!(
        detail.recent_output.contains("café ok"),
        "{}",
        detail.recent_output
    );
    assert_eq!(detail.info.now.output_bytes, full.len() as u64);

    for bad in ["-1", "abc", "1.5"] {
        let (status, body) = server
            .get(&format!(
                "/sessions/{}/transcript?since={bad}",
                session.about.id
            ))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "since must be a non-negative byte offset");
    }
    let (status, _) = server.get("/sessions/nope/transcript").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_ids_are_404() {
    let server = Server::start();
    for path in ["/sessions/nope", "/sessions/nope/transcript"] {
        let (status, body) = server.get(path).await;
        assert_eq!(
            (status, body),
            (StatusCode::NOT_FOUND, json!({"error": "Not found"}))
        );
    }
    let (status, body) = server.delete("/sessions/nope").await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({"error": "Not found"}))
    );
}

#[tokio::test]
async fn a_presets_file_replaces_the_builtin_ones() {
    let dir = std::env::temp_dir().join(format!("mp-presets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("presets.toml");
    std::fs::write(
        &file,
        "[presets.echoer]\ntype = \"print\"\ncommand = \"echo\"\nargs = [\"agent:\"]\n\
         [presets.typist]\ntype = \"interactive\"\ncommand = \"cat\"\ntaskDelivery = \"typed\"\n",
    )
    .unwrap();
    let server = Server::start_with(&[("MONKEYPROOF_PRESETS", file.to_str().unwrap())]);
    let (_, presets) = server.get("/presets").await;
    assert_eq!(presets.as_array().unwrap().len(), 2);
    assert_eq!(presets[0]["name"], "echoer");
    assert_eq!(presets[1]["taskDelivery"], "typed");
    let session = server
        .create(json!({"task": "hello there", "type": "print", "preset": "echoer"}))
        .await;
    assert_eq!(session.about.command, "echo agent: 'hello there'");
    let detail = server.wait_for_end(&session.about.id).await;
    assert!(detail.recent_output.contains("agent: hello there"));
    // print with an explicit command, and `mode` as the alias of `type`.
    let session = server
        .create(
            json!({"task": "t", "mode": "print", "command": "printf", "args": ["%s-%s\\n", "x"]}),
        )
        .await;
    assert_eq!(
        session.about.kind,
        monkeyproof::protocol::SessionKind::Print
    );
    let detail = server.wait_for_end(&session.about.id).await;
    assert!(
        detail.recent_output.contains("x-t"),
        "{}",
        detail.recent_output
    );
    // Without a preset or command, print falls back to the `claude` preset, absent here.
    let (status, body) = server
        .post("/sessions", json!({"task": "t", "type": "print"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("Unknown preset \"claude\"")
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Sends only the head of a POST that announces `length` body bytes; returns the status and the
/// raw response text.
async fn raw_post_headers(server: &Server, path: &str, length: usize) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n",
        server.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = vec![0u8; 4096];
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read(&mut response),
    )
    .await
    .expect("no answer to an oversized body")
    .unwrap();
    let text = String::from_utf8_lossy(&response[..n]).into_owned();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, text)
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_resolves() {
    let server = Server::start();
    let res = reqwest::get(server.url("/openapi.json")).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let (status, doc) = server.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "monkeyproof");
    let routes = [
        ("get", "/"),
        ("get", "/health"),
        ("get", "/assets/{name}"),
        ("get", "/openapi.json"),
        ("get", "/presets"),
        ("get", "/sessions"),
        ("post", "/sessions"),
        ("get", "/sessions/{id}"),
        ("delete", "/sessions/{id}"),
        ("post", "/sessions/{id}/input"),
        ("post", "/sessions/{id}/resize"),
        ("get", "/sessions/{id}/transcript"),
        ("get", "/sessions/{id}/recording"),
        ("get", "/sessions/{id}/screen"),
        ("post", "/sessions/{id}/wait"),
        ("get", "/sessions/{id}/ws"),
        ("get", "/sessions/{id}/events"),
        ("get", "/events"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    let listed: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        listed,
        routes.len(),
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );
    for (method, path) in routes {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is missing");
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path}"
        );
    }
    // Public routes say so; the rest use the bearer scheme.
    assert_eq!(doc["paths"]["/health"]["get"]["security"], json!([{}]));
    assert_eq!(doc["security"], json!([{"bearer": []}]));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // Every reference resolves.
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "SessionInfo",
        "SessionDetail",
        "CreateSessionRequest",
        "WaitResult",
        "SessionEvent",
        "ErrorBody",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &reference[..reference.find('"').unwrap()];
        assert!(schemas.contains_key(name), "dangling $ref to {name}");
    }
    // And a real validator agrees (the test command installs it from PyPI).
    let file = server.data_dir.join("openapi.json");
    std::fs::write(&file, &text).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document (pip install openapi-spec-validator):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn labels_are_bounded_and_handled_in_linear_time() {
    let server = Server::start();
    let many: Vec<String> = (0..100_000).map(|i| format!("l{i}")).collect();
    let started = std::time::Instant::now();
    let (create, health) = tokio::join!(
        server.post("/sessions", json!({"task": "true", "labels": many})),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let started = std::time::Instant::now();
            let status = server.get("/health").await.0;
            (status, started.elapsed())
        }
    );
    let (status, body) = create;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("at most 64"),
        "{body}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(health.0, StatusCode::OK);
    assert!(
        health.1 < std::time::Duration::from_millis(500),
        "{:?}",
        health.1
    );
    // 64 labels, long ones cut, duplicates (after normalising) dropped; a long owner refused.
    let mut labels: Vec<String> = (0..63).map(|i| format!("Label-{i}")).collect();
    labels.push("label-0".into());
    let session = server
        .create(json!({"task": "true", "labels": labels}))
        .await;
    assert_eq!(session.about.labels.len(), 63);
    let (status, body) = server
        .post(
            "/sessions",
            json!({"task": "true", "owner": "o".repeat(300)}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // A name: trimmed, shown; too long or with control characters refused.
    let named = server
        .create(json!({"task": "true", "name": "  nightly build  "}))
        .await;
    assert_eq!(named.about.name.as_deref(), Some("nightly build"));
    let (_, listed) = server.get("/sessions").await;
    assert!(listed.to_string().contains("\"name\":\"nightly build\""));
    for bad in ["n".repeat(65), "two\nlines".into(), "\u{1b}[31mred".into()] {
        let (status, body) = server
            .post("/sessions", json!({"task": "true", "name": bad}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["error"].as_str().unwrap().starts_with("name:"),
            "{body}"
        );
    }
}
