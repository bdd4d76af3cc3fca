//! Orchestrator primitives: the screen in three formats, keys and paste, waiting, activity.

mod common;

use std::time::{Duration, Instant};

use common::*;
use monkeyproof::protocol::{SessionStatus, WaitResult};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Starts the key logger; returns its session id once it is ready.
async fn key_logger(server: &Server, args: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keylog.py");
    let session = server.exec(&format!("exec python3 {script} {args}")).await;
    server.wait_for_screen(&session.about.id, "ready").await;
    session.about.id
}

/// Everything the key logger has read so far.
async fn logged_bytes(server: &Server, id: &str) -> Vec<u8> {
    let transcript = String::from_utf8(server.transcript(id).await).unwrap();
    let hex: String = transcript
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("hex:"))
        .collect();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

async fn wait_for_logged(server: &Server, id: &str, expected: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = logged_bytes(server, id).await;
        if got == expected {
            return;
        }
        assert!(
            Instant::now() < deadline && expected.starts_with(&got),
            "program read {:?}, expected {:?}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected)
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

#[tokio::test]
async fn each_key_name_reaches_the_program_as_its_bytes() {
    let server = Server::start();
    let id = key_logger(&server, "").await;
    let table: &[(&str, &[u8])] = &[
        ("C-c", b"\x03"),
        ("Enter", b"\r"),
        ("Up", b"\x1b[A"),
        ("Escape", b"\x1b"),
        ("Tab", b"\t"),
        ("BTab", b"\x1b[Z"),
        ("BSpace", b"\x7f"),
        ("Space", b" "),
        ("F5", b"\x1b[15~"),
        ("F1", b"\x1bOP"),
        ("M-x", b"\x1bx"),
        ("Home", b"\x1b[H"),
        ("PageDown", b"\x1b[6~"),
        ("Delete", b"\x1b[3~"),
        ("C-Left", b"\x1b[1;5D"),
        ("C-d", b"\x04"),
        ("q", b"q"),
        ("Down", b"\x1b[B"),
        ("Right", b"\x1b[C"),
        ("Left", b"\x1b[D"),
        ("End", b"\x1b[F"),
        ("PageUp", b"\x1b[5~"),
        ("Insert", b"\x1b[2~"),
        ("F2", b"\x1bOQ"),
        ("F3", b"\x1bOR"),
        ("F4", b"\x1bOS"),
        ("F6", b"\x1b[17~"),
        ("F7", b"\x1b[18~"),
        ("F8", b"\x1b[19~"),
        ("F9", b"\x1b[20~"),
        ("F10", b"\x1b[21~"),
        ("F11", b"\x1b[23~"),
        ("F12", b"\x1b[24~"),
        ("M-Enter", b"\x1b\r"),
        ("C-Space", b"\x00"),
        ("S-Up", b"\x1b[1;2A"),
        ("\u{e9}", "\u{e9}".as_bytes()),
    ];
    // Every special name of the documented table is covered here.
    for name in monkeyproof::engine::SPECIAL_KEY_NAMES {
        assert!(table.iter().any(|(n, _)| n == name), "{name} is not tested");
    }
    let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
    let expected: Vec<u8> = table.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    let (status, body) = server
        .post(&format!("/sessions/{id}/input"), json!({"keys": names}))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"sent": true})));
    wait_for_logged(&server, &id, &expected).await;

    // One unknown name refuses the request, naming it, and sends nothing.
    let (status, body) = server
        .post(
            &format!("/sessions/{id}/input"),
            json!({"keys": ["a", "Hyper-Q", "b"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("Hyper-Q"),
        "{body}"
    );
    let (status, _) = server
        .post(
            &format!("/sessions/{id}/input"),
            json!({"keys": ["a"], "input": "b"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(logged_bytes(&server, &id).await, expected);
}

#[tokio::test]
async fn cursor_keys_follow_the_programs_mode() {
    let server = Server::start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keylog.py");
    // DECCKM on, as vim and less set it.
    let session = server
        .exec(&format!("printf '\\033[?1h'; exec python3 {script}"))
        .await;
    server.wait_for_screen(&session.about.id, "ready").await;
    server
        .post(
            &format!("/sessions/{}/input", session.about.id),
            json!({"keys": ["Up", "Left"]}),
        )
        .await;
    wait_for_logged(&server, &session.about.id, b"\x1bOA\x1bOD").await;
}

#[tokio::test]
async fn paste_is_bracketed_only_when_the_program_asked() {
    let server = Server::start();
    let text = "line one\nline two";
    let plain = key_logger(&server, "").await;
    server
        .post(
            &format!("/sessions/{plain}/input"),
            json!({"text": text, "paste": true, "enter": true}),
        )
        .await;
    wait_for_logged(&server, &plain, b"line one\nline two\r").await;

    let bracketed = key_logger(&server, "paste").await;
    let (status, _) = server
        .post(
            &format!("/sessions/{bracketed}/input"),
            json!({"text": text, "paste": true, "enter": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    wait_for_logged(
        &server,
        &bracketed,
        b"\x1b[200~line one\nline two\x1b[201~\r",
    )
    .await;
}

/// Texts that try to end a bracketed paste early, nested and split every way.
const PASTE_ESCAPES: &[&str] = &[
    "echo one\u{1b}[20\u{1b}[201~1~\rtouch /tmp/PWNED\r",
    "\u{1b}[201~",
    "\u{1b}\u{1b}[201~[201~",
    "a\u{1b}[2\u{1b}[20\u{1b}[201~1~1~b",
    "\u{1b}[200~inner\u{1b}[201~outer",
    "c1 \u{9b}201~ csi",
    "\u{1b}[20\u{1b}\u{1b}[201~[201~1~",
];

/// What a program must read for `text` pasted into it: one start marker, the text without any
/// escape, one end marker at the very end.
fn pasted(text: &str) -> Vec<u8> {
    let clean: String = text
        .chars()
        .filter(|&c| c != '\u{1b}' && c != '\u{9b}')
        .collect();
    [b"\x1b[200~", clean.as_bytes(), b"\x1b[201~"].concat()
}

#[tokio::test]
async fn a_paste_can_never_end_early() {
    let server = Server::start();
    for text in PASTE_ESCAPES {
        let id = key_logger(&server, "paste").await;
        let (status, _) = server
            .post(
                &format!("/sessions/{id}/input"),
                json!({"text": text, "paste": true}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let expected = pasted(text);
        assert_eq!(
            expected.windows(6).filter(|w| w == b"\x1b[201~").count(),
            1,
            "{text:?}"
        );
        wait_for_logged(&server, &id, &expected).await;
    }

    // Into a real bash (readline enables bracketed paste): the command after the forged end
    // marker is never run.
    let marker = std::env::temp_dir().join(format!("mp-pwned-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let shell = server.exec("exec bash --norc --noprofile -i").await;
    server.wait_for_screen(&shell.about.id, "bash-").await;
    let attack = format!(
        "echo one\u{1b}[20\u{1b}[201~1~\rtouch {}\r",
        marker.display()
    );
    server
        .post(
            &format!("/sessions/{}/input", shell.about.id),
            json!({"text": attack, "paste": true}),
        )
        .await;
    wait(
        &server,
        &shell.about.id,
        json!({"idle_ms": 500, "timeout_ms": 5000}),
    )
    .await;
    assert!(!marker.exists(), "the pasted command ran");
}

#[tokio::test]
async fn a_typed_task_can_never_end_its_paste_early() {
    let logger = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keylog.py");
    let dir = std::env::temp_dir().join(format!("mp-typed-esc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let presets = dir.join("presets.toml");
    std::fs::write(
        &presets,
        format!(
            "[presets.logger]\ntype = \"interactive\"\ncommand = \"python3\"\n\
             args = [\"{logger}\", \"paste\"]\ntaskDelivery = \"typed\"\n"
        ),
    )
    .unwrap();
    let server = Server::start_with(&[("MONKEYPROOF_PRESETS", presets.to_str().unwrap())]);
    let task = PASTE_ESCAPES[0];
    let session = server
        .create(json!({"type": "interactive", "preset": "logger", "task": task}))
        .await;
    let mut expected = pasted(task);
    expected.push(b'\r');
    let deadline = Instant::now() + Duration::from_secs(15);
    while logged_bytes(&server, &session.about.id).await != expected {
        assert!(Instant::now() < deadline, "the task never arrived whole");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn screen_as_text_ansi_and_json() {
    let server = Server::start();
    let session = server
        .create(json!({"task": "for i in $(seq 1 30); do echo row-$i; done; printf '\\033[31mred\\033[0m   \\n'; sleep 30", "rows": 10, "cols": 40}))
        .await;
    let id = &session.about.id;
    server.wait_for_screen(id, "red").await;

    let res = server.get_text(&format!("/sessions/{id}/screen")).await;
    let offset: u64 = res.headers()["x-output-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(offset, session_bytes(&server, id).await);
    let text = res.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Ten rows: row-23 to row-30, the red line, and the cursor's empty row.
    assert_eq!(lines.first(), Some(&"row-23"));
    assert_eq!(
        lines.last(),
        Some(&"red"),
        "trailing blanks and empty rows are trimmed"
    );

    let ansi = screen(&server, id, "?format=ansi").await;
    assert!(
        ansi.contains("\x1b[31mred") || ansi.contains("\x1b[31m") && ansi.contains("red"),
        "{ansi:?}"
    );

    let json: Value =
        serde_json::from_str(&screen(&server, id, "?format=json&scrollback=5").await).unwrap();
    assert_eq!(json["rows"], 10);
    assert_eq!(json["cols"], 40);
    assert_eq!(json["lines"][0], "row-23");
    assert_eq!(
        json["scrollback"],
        json!(["row-18", "row-19", "row-20", "row-21", "row-22"])
    );
    assert_eq!(json["alternateScreen"], false);
    assert_eq!(json["cursor"], json!({"row": 9, "col": 0}));
    assert!(json["offset"].as_u64().unwrap() > 0);
    let text = screen(&server, id, "?scrollback=3").await;
    assert!(
        text.starts_with("row-20\nrow-21\nrow-22\nrow-23\n"),
        "{text}"
    );

    for bad in ["?format=xml", "?scrollback=-1", "?scrollback=lots"] {
        let (status, body) = server.get(&format!("/sessions/{id}/screen{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(body["error"].is_string());
    }
    assert_eq!(
        server.get("/sessions/nope/screen").await.0,
        StatusCode::NOT_FOUND
    );
}

async fn screen(server: &Server, id: &str, query: &str) -> String {
    let res = server
        .http
        .get(server.url(&format!("/sessions/{id}/screen{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{query}");
    res.text().await.unwrap()
}

async fn session_bytes(server: &Server, id: &str) -> u64 {
    server.detail(id).await.info.now.output_bytes
}

async fn wait(server: &Server, id: &str, body: Value) -> WaitResult {
    let res = server
        .http
        .post(server.url(&format!("/sessions/{id}/wait")))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{body}");
    res.json().await.unwrap()
}

#[tokio::test]
async fn wait_for_a_pattern_idle_exit_or_timeout() {
    let server = Server::start();
    let session = server
        .exec("sleep 0.4; echo 'answer: 42'; sleep 0.6; echo done; read x; exit 3")
        .await;
    let id = &session.about.id;
    let started = Instant::now();
    let matched = wait(
        &server,
        id,
        json!({"match": "answer: \\d+", "timeout_ms": 10000}),
    )
    .await;
    assert_eq!(matched.condition, "match");
    assert_eq!(matched.matched.as_deref(), Some("answer: 42"));
    assert!(!matched.timed_out);
    assert!(matched.screen.contains("answer: 42"));
    assert!(started.elapsed() < Duration::from_secs(5));

    let timed_out = wait(
        &server,
        id,
        json!({"match": "never-printed", "timeout_ms": 300}),
    )
    .await;
    assert_eq!(
        (timed_out.condition.as_str(), timed_out.timed_out),
        ("timeout", true)
    );

    // Idle: returns once the output has been quiet for the given time.
    wait(&server, id, json!({"match": "done", "timeout_ms": 10000})).await;
    let idle = wait(&server, id, json!({"idle_ms": 300, "timeout_ms": 10000})).await;
    assert_eq!(idle.condition, "idle");
    assert!(idle.screen.contains("done"), "{}", idle.screen);
    let detail = server.detail(id).await;
    assert!(detail.info.now.idle_ms >= 300);

    // Matching on output after an offset ignores what came before it.
    let since = idle.offset;
    let (_, _) = server
        .post(
            &format!("/sessions/{id}/input"),
            json!({"input": "bye", "enter": true}),
        )
        .await;
    let after = wait(
        &server,
        id,
        json!({"match": "answer|bye", "since": since, "timeout_ms": 10000}),
    )
    .await;
    assert_eq!(after.matched.as_deref(), Some("bye"));

    let exit = wait(&server, id, json!({"exit": true, "timeout_ms": 10000})).await;
    assert_eq!(exit.condition, "exit");
    assert_eq!(exit.status, SessionStatus::Exited);
    // A wait on an ended session returns at once.
    let ended = wait(
        &server,
        id,
        json!({"match": "nothing-more", "timeout_ms": 10000}),
    )
    .await;
    assert_eq!(ended.condition, "exit");

    for (bad, message) in [
        (json!({}), "one of idle_ms, match, exit or agent"),
        (json!({"match": "("}), "match"),
        (json!({"exit": true, "timeout_ms": 99999999}), "timeout_ms"),
        (json!({"exit": true, "sometime": 1}), "sometime"),
    ] {
        let (status, body) = server
            .post(&format!("/sessions/{id}/wait"), bad.clone())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            body["error"].as_str().unwrap().contains(message),
            "{bad}: {body}"
        );
    }
    assert_eq!(
        server
            .post("/sessions/nope/wait", json!({"exit": true}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn many_waiters_on_many_sessions_are_all_released() {
    let server = Server::start_with(&[("MAX_SESSIONS", "60")]);
    let mut ids = Vec::new();
    for i in 0..50 {
        let session = server
            .exec(&format!("read x; echo released-{i}-$x; sleep 30"))
            .await;
        ids.push(session.about.id);
    }
    let started = Instant::now();
    let mut waiters = tokio::task::JoinSet::new();
    for n in 0..200 {
        let id = ids[n % 50].clone();
        let i = n % 50;
        let client = server.http.clone();
        let url = server.url(&format!("/sessions/{id}/wait"));
        waiters.spawn(async move {
            let res = client
                .post(url)
                .json(&json!({"match": format!("released-{i}-go"), "timeout_ms": 60000}))
                .send()
                .await
                .unwrap();
            res.json::<WaitResult>().await.unwrap()
        });
    }
    // Nothing is released before the output exists.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(waiters.len(), 200);
    assert!(waiters.try_join_next().is_none());
    for id in &ids {
        server
            .post(
                &format!("/sessions/{id}/input"),
                json!({"input": "go", "enter": true}),
            )
            .await;
    }
    let mut released = 0;
    while let Some(result) = waiters.join_next().await {
        let result = result.unwrap();
        assert_eq!(result.condition, "match", "{result:?}");
        released += 1;
    }
    assert_eq!(released, 200);
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn activity_title_and_bells() {
    let server = Server::start_with(&[("MONKEYPROOF_BUSY_MS", "400")]);
    let session = server
        .exec("printf '\\033]0;my-title\\007'; printf '\\a\\a'; while :; do echo tick; sleep 0.05; done")
        .await;
    let busy = server
        .wait_for(&session.about.id, "busy", |d| {
            d.info.now.title == "my-title"
        })
        .await;
    assert_eq!(busy.info.now.bells, 2);
    assert_eq!(
        busy.info.now.activity,
        monkeyproof::protocol::Activity::Busy
    );
    assert!(busy.info.now.last_output_at.is_some());
    // Stop the output with Ctrl-C: the session turns idle.
    server
        .post(
            &format!("/sessions/{}/input", session.about.id),
            json!({"keys": ["C-c"]}),
        )
        .await;
    let quiet = server
        .wait_for(&session.about.id, "idle", |d| {
            d.info.now.activity == monkeyproof::protocol::Activity::Idle
        })
        .await;
    assert!(quiet.info.now.idle_ms >= 400);
}

#[tokio::test]
async fn driving_a_full_screen_agent_end_to_end() {
    let server = Server::start();
    let agent = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fake_agent.py");
    // An interactive session whose task is a greeting; the real task comes as a paste.
    let session = server
        .create(
            json!({"type": "interactive", "command": "python3", "args": [agent], "task": "hello"}),
        )
        .await;
    let id = &session.about.id;
    let first = wait(
        &server,
        id,
        json!({"match": "ANSWER: 1 lines, first='hello'", "timeout_ms": 15000}),
    )
    .await;
    assert_eq!(first.condition, "match");

    let task = "Refactor the parser.\nKeep the tests green.\nReport what changed.";
    let (status, _) = server
        .post(
            &format!("/sessions/{id}/input"),
            json!({"text": task, "paste": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // The spinner means busy; the answer is on the screen once it is idle.
    let thinking = wait(
        &server,
        id,
        json!({"match": "thinking", "timeout_ms": 15000}),
    )
    .await;
    assert_eq!(thinking.condition, "match");
    let idle = wait(&server, id, json!({"idle_ms": 500, "timeout_ms": 15000})).await;
    assert_eq!(idle.condition, "idle");
    let screen = screen(&server, id, "").await;
    assert!(
        screen
            .contains("ANSWER: 3 lines, first='Refactor the parser.', last='Report what changed.'"),
        "the paste did not arrive as one message:\n{screen}"
    );
    let detail = server.detail(id).await;
    assert!(detail.screen.alternate_screen);

    server
        .post(&format!("/sessions/{id}/input"), json!({"keys": ["C-c"]}))
        .await;
    let exit = wait(&server, id, json!({"exit": true, "timeout_ms": 15000})).await;
    assert_eq!(exit.condition, "exit");
    let ended = server.detail(id).await;
    assert_eq!(ended.info.now.exit_code, Some(0));
    assert!(!ended.screen.alternate_screen);
}

#[tokio::test]
async fn a_typed_task_is_pasted_in_once_the_agent_is_idle() {
    let agent = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fake_agent.py");
    let dir = std::env::temp_dir().join(format!("mp-typed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let presets = dir.join("presets.toml");
    std::fs::write(
        &presets,
        format!(
            "[presets.fake]\ntype = \"interactive\"\ncommand = \"python3\"\nargs = [\"{agent}\"]\n\
             taskDelivery = \"typed\"\n"
        ),
    )
    .unwrap();
    let server = Server::start_with(&[("MONKEYPROOF_PRESETS", presets.to_str().unwrap())]);
    let session = server
        .create(json!({"type": "interactive", "preset": "fake", "task": "first line\nsecond line"}))
        .await;
    // Not in the command line: it is typed in later.
    assert_eq!(session.about.command, format!("python3 {agent}"));
    assert_eq!(session.now.task_delivered_at, None);
    let answered = wait(
        &server,
        &session.about.id,
        json!({"match": "ANSWER: 2 lines, first='first line', last='second line'", "timeout_ms": 20000}),
    )
    .await;
    assert_eq!(answered.condition, "match");
    assert!(
        server
            .detail(&session.about.id)
            .await
            .info
            .now
            .task_delivered_at
            .is_some()
    );

    // Argument delivery counts as delivered at start.
    let plain = server
        .create(json!({"type": "interactive", "command": "python3", "args": [agent], "task": "x"}))
        .await;
    assert!(plain.now.task_delivered_at.is_some());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_costly_pattern_holds_up_nobody_else() {
    let server = Server::start();
    // About 1 MB of non-ASCII text: Unicode word boundaries make the regex engine fall back to
    // its slowest matcher on it.
    let session = server
        .exec(
            "python3 -c 'print(\"h\\u00e9llo w\\u00f6rld \\u2500 \\u4e2d\\u6587\" * 40000)'; \
             echo PRINTED; sleep 60",
        )
        .await;
    let id = &session.about.id;
    wait(
        &server,
        id,
        json!({"match": "PRINTED", "timeout_ms": 20000}),
    )
    .await;
    let path = format!("/sessions/{id}/wait");

    // The pattern of the report is too large to compile: refused at once.
    let (status, body) = server
        .post(
            &path,
            json!({"match": "(?:(?:.|\\n)+\\b){800}Q", "since": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("match:"),
        "{body}"
    );

    // The costliest that compiles runs off the async workers and outside the session lock:
    // the server, and this session, answer as quickly as ever meanwhile.
    let costly = tokio::spawn({
        let (http, url) = (server.http.clone(), server.url(&path));
        async move {
            let res = http
                .post(url)
                .json(&json!({"match": "(?:.*\\b){30}Q", "since": 0, "timeout_ms": 4000}))
                .send()
                .await
                .unwrap();
            (res.status(), res.json::<Value>().await.unwrap())
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(server.get("/health").await.0, StatusCode::OK);
        assert_eq!(
            server.get(&format!("/sessions/{id}")).await.0,
            StatusCode::OK
        );
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        slowest < Duration::from_millis(250),
        "a request took {slowest:?}"
    );
    let (status, body) = costly.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["condition"], "timeout", "{body}");
}

#[tokio::test]
async fn a_wait_since_past_the_end_is_refused_clearly() {
    let server = Server::start();
    let session = server.exec("echo some output; sleep 30").await;
    server
        .wait_for_screen(&session.about.id, "some output")
        .await;
    let (status, body) = server
        .post(
            &format!("/sessions/{}/wait", session.about.id),
            json!({"match": "x", "since": 1_000_000_000u64}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("past the end"),
        "{body}"
    );
}

#[tokio::test]
async fn input_larger_than_the_terminal_holds_goes_in_whole_as_the_program_reads() {
    let server = Server::start();
    // Raw mode: no line length limit, no echo; the program reads at its own pace.
    let session = server
        .exec("stty raw -echo; echo READY; head -c 300000 | wc -c; sleep 30")
        .await;
    server.wait_for_screen(&session.about.id, "READY").await;
    // Far more than the terminal buffers: the writes wait for the program, then go on.
    let (status, body) = server
        .post(
            &format!("/sessions/{}/input", session.about.id),
            json!({"input": "x".repeat(300_000), "enter": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.wait_for_screen(&session.about.id, "300000").await;
}
