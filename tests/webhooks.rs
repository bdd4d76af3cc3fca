//! `MONKEYPROOF_WEBHOOK`: a local HTTP server receives the notices — an agent waiting and going
//! idle, a session exiting — as JSON (retried after a failure) and in ntfy's form, and the
//! secret in a webhook URL never reaches the log.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::*;
use serde_json::{Value, json};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: String,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
}

async fn receive(
    State(receiver): State<Receiver>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let mut got = receiver.got.lock().unwrap();
    got.push(Received {
        path: uri.path().to_owned(),
        headers,
        body,
    });
    // The very first JSON notice fails, so it must be tried again.
    if uri.path().starts_with("/hook") && got.iter().filter(|r| r.path == uri.path()).count() == 1 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

async fn start_receiver() -> (Receiver, String) {
    let receiver = Receiver::default();
    let app = axum::Router::new()
        .fallback(axum::routing::post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (receiver, format!("http://{addr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_waiting_and_idle_and_sessions_exiting_are_posted_as_json_and_to_ntfy() {
    let (receiver, base) = start_receiver().await;
    let hooks = format!("{base}/hook/s3cret-path-token?key=s3cret-query,ntfy+{base}/topic");
    let server = Server::start_logging(&[("MONKEYPROOF_WEBHOOK", &hooks)]);
    let session = server
        .create(
            json!({"type": "interactive", "command": agent_fixture("claude"), "task": "please run it"}),
        )
        .await;
    let id = session.about.id.clone();
    let json_notices = || {
        receiver
            .got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.starts_with("/hook"))
            .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
            .collect::<Vec<_>>()
    };
    let waiting = eventually("a waiting notice", || async {
        json_notices()
            .into_iter()
            .find(|n| n["event"]["type"] == "agent" && n["event"]["agent"]["state"] == "waiting")
    })
    .await;
    assert_eq!(waiting["session"]["id"], id.as_str());
    assert_eq!(waiting["event"]["session"], id.as_str());
    assert_eq!(waiting["event"]["agent"]["waitingFor"], "permission");
    assert_eq!(waiting["session"]["agent"]["state"], "waiting");

    server
        .post(&format!("/sessions/{id}/input"), json!({"approve": true}))
        .await;
    let idle = eventually("an idle notice", || async {
        json_notices().into_iter().find(|n| {
            n["event"]["type"] == "agent" && n["event"]["agent"]["lastAnswer"].is_string()
        })
    })
    .await;
    assert_eq!(
        idle["event"]["agent"]["lastAnswer"],
        "Ran echo hi: it printed hi."
    );
    server.delete(&format!("/sessions/{id}")).await;
    let exit = eventually("an exit notice", || async {
        json_notices()
            .into_iter()
            .find(|n| n["event"]["type"] == "exit")
    })
    .await;
    assert_eq!(exit["session"]["status"], "killed");

    // The first POST failed (503) and was tried again: nothing was lost, in order.
    let kinds: Vec<String> = json_notices()
        .iter()
        .map(|n| {
            let agent = &n["event"]["agent"];
            format!("{}:{}", n["event"]["type"], agent["state"])
        })
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| k.contains("waiting")).count(),
        2,
        "the failed one and its retry: {kinds:?}"
    );
    let first_waiting = kinds.iter().position(|k| k.contains("waiting")).unwrap();
    let first_idle_after = kinds[first_waiting..].iter().any(|k| k.contains("idle"));
    assert!(first_idle_after, "{kinds:?}");

    // ntfy's form: plain text, a title, a higher priority for a permission.
    let ntfy = eventually("the ntfy notices", || async {
        let got = receiver.got.lock().unwrap().clone();
        let topic: Vec<Received> = got.into_iter().filter(|r| r.path == "/topic").collect();
        topic
            .iter()
            .any(|r| r.body.contains("ended") || r.body.contains("killed"))
            .then_some(topic)
    })
    .await;
    let waiting = ntfy
        .iter()
        .find(|r| r.body.contains("waiting"))
        .expect("a waiting notice");
    assert_eq!(
        waiting.body,
        "Claude is waiting for permission. Bash: echo hi"
    );
    assert_eq!(waiting.headers["title"], "monkeyproof: please run it");
    assert_eq!(waiting.headers["priority"], "4");
    assert_eq!(waiting.headers["content-type"], "text/plain; charset=utf-8");

    // The log names the webhooks without their secrets.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = server.log_text();
    assert!(log.contains("webhook configured"), "{log}");
    assert!(!log.contains("s3cret"), "{log}");
}

#[tokio::test]
async fn a_bad_webhook_url_is_refused_at_start_without_showing_it() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_monkeyproof"))
        .env("MONKEYPROOF_WEBHOOK", "ftp://files.example.com/s3cret")
        .env("PORT", "0")
        .env("AGENT_WS_TOKEN", TOKEN)
        .env(
            "MONKEYPROOF_DATA_DIR",
            std::env::temp_dir().join(format!("mp-webhook-{}", std::process::id())),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("MONKEYPROOF_WEBHOOK"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}
