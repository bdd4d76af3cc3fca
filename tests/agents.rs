//! Agent awareness, driven end to end with stand-ins for Claude Code and Codex that follow their
//! documented contracts (`tests/fixtures/agents/`): hooks from `--settings` and the user's own
//! settings, Codex's notify program, their screens and keys.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use monkeyproof::protocol::{AgentKind, SessionEventKind};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A fresh directory for a stand-in's HOME or CODEX_HOME.
fn scratch(server: &Server, name: &str) -> PathBuf {
    let dir = server.data_dir.with_extension(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits (`POST /wait`) for the agent of `id` to reach one of `states`; the wait's answer.
async fn wait_agent(server: &Server, id: &str, states: &[&str]) -> Value {
    let (status, waited) = server
        .post(
            &format!("/sessions/{id}/wait"),
            json!({"agent": states, "timeout_ms": 20000}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{waited}");
    assert_eq!(waited["condition"], "agent", "{waited}");
    waited
}

async fn approve(server: &Server, id: &str, yes: bool) -> (StatusCode, Value) {
    server
        .post(&format!("/sessions/{id}/input"), json!({"approve": yes}))
        .await
}

#[tokio::test]
async fn a_claude_turn_with_a_permission_is_followed_exactly_and_the_users_hooks_still_run() {
    let server = Server::start();
    let home = scratch(&server, "home");
    std::fs::create_dir_all(home.join(".claude")).unwrap();
    let user_hook = json!({"hooks": {"Stop": [{"hooks": [
        {"type": "command", "command": "touch \"$HOME/user-stop-hook-ran\""}
    ]}]}});
    std::fs::write(home.join(".claude/settings.json"), user_hook.to_string()).unwrap();
    let mut feed = Sse::open(&server, "/events", None).await;
    let session = server
        .create(json!({
            "type": "interactive", "command": agent_fixture("claude"), "task": "please run the tests",
            "env": {"HOME": home},
        }))
        .await;
    let id = &session.about.id;
    assert_eq!(session.now.agent.unwrap().kind, AgentKind::Claude);

    let waiting = wait_agent(&server, id, &["waiting"]).await;
    let agent = &waiting["agent"];
    assert_eq!(agent["waitingFor"], "permission", "{waiting}");
    assert_eq!(agent["tool"], "Bash");
    assert_eq!(agent["message"], "echo hi");
    // The hook comes first; the prompt is drawn after it.
    server.wait_for_screen(id, "Do you want to proceed?").await;

    let (status, _) = approve(&server, id, true).await;
    assert_eq!(status, StatusCode::OK);
    let idle = wait_agent(&server, id, &["idle"]).await;
    assert_eq!(idle["agent"]["lastAnswer"], "Ran echo hi: it printed hi.");
    assert_eq!(idle["agent"]["waitingFor"], Value::Null);
    // Nothing waits for a permission now.
    let (status, body) = approve(&server, id, true).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // The feed saw each change, in order, as it happened.
    let mut states = Vec::new();
    loop {
        let event = feed.next().await;
        if event.session != *id {
            continue;
        }
        if let SessionEventKind::Agent { agent } = event.kind {
            let state = serde_json::to_value(agent.state).unwrap();
            if states.last() != Some(&state) {
                states.push(state);
            }
            if agent.last_answer.is_some() {
                break;
            }
        }
    }
    let states: Vec<&str> = states.iter().map(|s| s.as_str().unwrap()).collect();
    let turn = ["working", "waiting", "working", "idle"];
    assert!(
        states.windows(4).any(|w| w == turn),
        "agent events: {states:?}"
    );
    // The user's own Stop hook ran beside ours.
    eventually("the user's hook to run", || async {
        home.join("user-stop-hook-ran").exists().then_some(())
    })
    .await;

    // A report with another secret changes nothing.
    let forged = json!({"session": id, "secret": "not-the-secret", "kind": "claude",
        "event": "PermissionRequest", "tool": "Bash", "message": "rm -rf /",
        "notificationType": null, "lastAnswer": null});
    let sender = std::os::unix::net::UnixDatagram::unbound().unwrap();
    sender
        .send_to(
            forged.to_string().as_bytes(),
            server.data_dir.join("hooks.sock"),
        )
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let detail = server.detail(id).await;
    assert_eq!(
        serde_json::to_value(detail.info.now.agent.unwrap().state).unwrap(),
        "idle"
    );
}

#[tokio::test]
async fn a_question_and_a_denied_permission_are_told_apart() {
    let server = Server::start();
    let session = server
        .create(
            json!({"type": "interactive", "command": agent_fixture("claude"), "task": "ask me"}),
        )
        .await;
    let id = &session.about.id;
    let waiting = wait_agent(&server, id, &["waiting"]).await;
    assert_eq!(waiting["agent"]["waitingFor"], "question", "{waiting}");
    assert_eq!(waiting["agent"]["message"], "Which colour?");
    // A question is not a permission: approve does not answer it.
    let (status, _) = approve(&server, id, true).await;
    assert_eq!(status, StatusCode::CONFLICT);
    server
        .post(&format!("/sessions/{id}/input"), json!({"keys": ["2"]}))
        .await;
    let idle = wait_agent(&server, id, &["idle"]).await;
    assert_eq!(idle["agent"]["lastAnswer"], "You chose Blue.");

    // Denied with the agent's own key.
    server
        .post(
            &format!("/sessions/{id}/input"),
            json!({"input": "run it", "enter": true}),
        )
        .await;
    wait_agent(&server, id, &["waiting"]).await;
    let (status, _) = approve(&server, id, false).await;
    assert_eq!(status, StatusCode::OK);
    let idle = wait_agent(&server, id, &["idle"]).await;
    assert_eq!(
        idle["agent"]["lastAnswer"],
        "Permission denied; tell me what to do differently."
    );
}

#[tokio::test]
async fn the_login_screen_is_read_by_the_rules_before_any_hook() {
    let server = Server::start();
    let session = server
        .create(json!({
            "type": "interactive", "command": agent_fixture("claude"), "task": "hello",
            "env": {"STANDIN_LOGIN": "1"},
        }))
        .await;
    let id = &session.about.id;
    let waiting = wait_agent(&server, id, &["waiting"]).await;
    assert_eq!(waiting["agent"]["waitingFor"], "login", "{waiting}");
    assert_eq!(waiting["agent"]["message"], "Select login method:");
    // A raw WebSocket viewer gets the changes too.
    let mut ws = server.raw_ws(id, "").await;
    server
        .post(&format!("/sessions/{id}/input"), json!({"keys": ["1"]}))
        .await;
    let idle = wait_agent(&server, id, &["idle"]).await;
    assert_eq!(idle["agent"]["lastAnswer"], "Answer to: hello");
    loop {
        if let Frame::Json(msg) = next_frame(&mut ws).await
            && msg["type"] == "event"
            && msg["event"]["type"] == "agent"
            && msg["event"]["agent"]["state"] == "idle"
        {
            assert_eq!(msg["event"]["session"], id.as_str());
            break;
        }
    }
}

#[tokio::test]
async fn codex_is_followed_through_notify_and_its_screen_and_its_users_notify_still_runs() {
    let server = Server::start();
    let codex_home = scratch(&server, "codex");
    let marker = codex_home.join("user-notify.json");
    let config = format!(
        "notify = [\"sh\", \"-c\", \"printf '%s' \\\"$1\\\" > \\\"$0\\\"\", \"{}\"]\n",
        marker.display()
    );
    std::fs::write(codex_home.join("config.toml"), config).unwrap();
    let session = server
        .create(json!({
            "type": "interactive", "command": agent_fixture("codex"), "task": "run the build",
            "env": {"CODEX_HOME": codex_home},
        }))
        .await;
    let id = &session.about.id;
    assert_eq!(session.now.agent.unwrap().kind, AgentKind::Codex);
    let waiting = wait_agent(&server, id, &["waiting"]).await;
    assert_eq!(waiting["agent"]["waitingFor"], "permission", "{waiting}");
    let (status, _) = approve(&server, id, true).await;
    assert_eq!(status, StatusCode::OK);
    let idle = wait_agent(&server, id, &["idle"]).await;
    assert_eq!(idle["agent"]["lastAnswer"], "Ran echo hi.");
    let notified = eventually("the user's notify program to run", || async {
        std::fs::read_to_string(&marker)
            .ok()
            .filter(|s| !s.is_empty())
    })
    .await;
    let notified: Value = serde_json::from_str(&notified).unwrap();
    assert_eq!(notified["type"], "agent-turn-complete");

    // The next turn is seen working again from the screen.
    server
        .post(
            &format!("/sessions/{id}/input"),
            json!({"input": "and again", "enter": true}),
        )
        .await;
    wait_agent(&server, id, &["working"]).await;
    let idle = wait_agent(&server, id, &["idle"]).await;
    assert_eq!(idle["agent"]["lastAnswer"], "Done: and again");
}

#[tokio::test]
async fn a_preset_declares_the_screen_rules_and_keys_of_any_program() {
    let dir = std::env::temp_dir().join(format!("mp-presets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let presets = dir.join("presets.toml");
    let script = "echo busy; sleep 0.3; printf 'Delete it? (y/n) '; read a; \
                  printf '\\033[2J\\033[Hgot %s\\n> ' \"$a\"; sleep 60";
    std::fs::write(
        &presets,
        format!(
            "[presets.asker]\ntype = \"interactive\"\ncommand = \"sh\"\nargs = [\"-c\", {script:?}]\n\
             [presets.asker.states]\nworking = \"^busy\"\nwaiting = '\\(y/n\\)'\nidle = '^>\\s*$'\n\
             approve = [\"y\", \"Enter\"]\ndeny = [\"n\", \"Enter\"]\n"
        ),
    )
    .unwrap();
    let server = Server::start_with(&[("MONKEYPROOF_PRESETS", presets.to_str().unwrap())]);
    let session = server
        .create(json!({"type": "interactive", "preset": "asker", "task": "x"}))
        .await;
    let id = &session.about.id;
    assert_eq!(session.now.agent.unwrap().kind, AgentKind::Custom);
    let waiting = wait_agent(&server, id, &["waiting"]).await;
    assert_eq!(waiting["agent"]["waitingFor"], "permission", "{waiting}");
    assert_eq!(waiting["agent"]["message"], "Delete it? (y/n)");
    approve(&server, id, true).await;
    wait_agent(&server, id, &["idle"]).await;
    server.wait_for_screen(id, "got y").await;
    // Sessions that run no agent say so.
    let plain = server.exec("sleep 5").await;
    assert!(plain.now.agent.is_none());
    let (status, body) = server
        .post(
            &format!("/sessions/{}/wait", plain.about.id),
            json!({"agent": ["idle"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `monkeyproof hook claude` with `socket`; its exit status and how long it took.
fn run_hook(socket: &Path) -> (std::process::ExitStatus, Duration) {
    use std::io::Write;
    let started = Instant::now();
    let mut hook = std::process::Command::new(env!("CARGO_BIN_EXE_monkeyproof"))
        .args(["hook", "claude"])
        .env("MONKEYPROOF_SESSION_ID", "some-session")
        .env("MONKEYPROOF_HOOK_SECRET", "some-secret")
        .env("MONKEYPROOF_HOOK_SOCKET", socket)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input =
        json!({"session_id": "x", "hook_event_name": "Stop", "transcript_path": "/nonexistent"});
    hook.stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let status = hook.wait().unwrap();
    (status, started.elapsed())
}

#[test]
fn the_hook_exits_0_at_once_when_the_server_is_down_or_not_reading() {
    let dir = std::env::temp_dir().join(format!("mp-hook-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // No server at all.
    let (status, took) = run_hook(&dir.join("hooks.sock"));
    assert!(status.success());
    assert!(took < Duration::from_secs(1), "took {took:?}");
    // A server that does not read: its socket's queue is full.
    let socket = dir.join("full.sock");
    let receiver = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
    let sender = std::os::unix::net::UnixDatagram::unbound().unwrap();
    sender.set_nonblocking(true).unwrap();
    while sender.send_to(&[0u8; 1024], &socket).is_ok() {}
    let (status, took) = run_hook(&socket);
    assert!(status.success());
    assert!(took < Duration::from_secs(1), "took {took:?}");
    drop(receiver);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn an_agent_is_followed_across_a_restart_with_its_hooks_and_last_answer() {
    let keep = |data_dir| {
        Server::launch(Launch {
            env: &[("MONKEYPROOF_ON_EXIT", "keep")],
            data_dir,
            ..Launch::default()
        })
    };
    let server = keep(None);
    let session = server
        .create(json!({"type": "interactive", "command": agent_fixture("claude"), "task": "hello"}))
        .await;
    let id = session.about.id.clone();
    eventually("the first turn's answer", || async {
        let agent = server.detail(&id).await.info.now.agent?;
        agent.last_answer.filter(|a| a == "Answer to: hello")
    })
    .await;
    let data_dir = server.stop_keeping_data(nix::sys::signal::Signal::SIGTERM);

    let server = keep(Some(data_dir));
    // Its screen says idle; the last answer is the one from before.
    let agent = server
        .detail(&id)
        .await
        .info
        .now
        .agent
        .expect("still an agent");
    assert_eq!(agent.kind, AgentKind::Claude);
    assert_eq!(agent.last_answer.as_deref(), Some("Answer to: hello"));
    // Its hooks, with the secret they were started with, are heard by the new server.
    server
        .post(
            &format!("/sessions/{id}/input"),
            json!({"input": "run it", "enter": true}),
        )
        .await;
    let waiting = wait_agent(&server, &id, &["waiting"]).await;
    assert_eq!(waiting["agent"]["waitingFor"], "permission", "{waiting}");
    assert_eq!(waiting["agent"]["tool"], "Bash");
    approve(&server, &id, true).await;
    let idle = wait_agent(&server, &id, &["idle"]).await;
    assert_eq!(idle["agent"]["lastAnswer"], "Ran echo hi: it printed hi.");
}

/// The real Claude Code CLI, when the test command could install it (`.ci/run` puts it in
/// `~/.cache/mp-claude`; `MONKEYPROOF_REAL_CLAUDE` names another).
fn real_claude() -> Option<PathBuf> {
    let path = std::env::var_os("MONKEYPROOF_REAL_CLAUDE")
        .map(PathBuf::from)
        .or_else(|| {
            Some(
                Path::new(&std::env::var_os("HOME")?)
                    .join(".cache/mp-claude/node_modules/.bin/claude"),
            )
        })?;
    path.exists().then_some(path)
}

#[tokio::test]
async fn the_real_claude_code_starts_with_the_settings_the_server_passes() {
    let Some(claude) = real_claude() else {
        eprintln!("skipped: the Claude Code CLI is not installed (see .ci/run)");
        return;
    };
    let server = Server::start();
    let home = scratch(&server, "home");
    let session = server
        .create(json!({
            "type": "interactive", "command": claude, "task": "hello", "env": {"HOME": home},
        }))
        .await;
    assert!(
        session.about.command.contains("--settings"),
        "{}",
        session.about.command
    );
    // It gets past its arguments to its welcome screen (without a network it then says it
    // cannot connect); a --settings it could not read would stop it with "Error: Settings …".
    let (_, waited) = server
        .post(
            &format!("/sessions/{}/wait", session.about.id),
            json!({"match": "Welcome to Claude Code|Error", "timeout_ms": 30000}),
        )
        .await;
    let screen = waited["screen"].as_str().unwrap();
    assert_eq!(waited["condition"], "match", "{screen}");
    assert!(screen.contains("Welcome to Claude Code"), "{screen}");
    assert!(!screen.contains("Settings file not found"), "{screen}");
    assert!(!screen.contains("Error: Settings"), "{screen}");
}
