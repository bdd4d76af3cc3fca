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
    let mut req = server.ws_request(&session.id, "", &[], Some(TOKEN));
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
    let detail = server.wait_for_end(&session.id).await;
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
        let id = &session.id;
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
            server.detail(id).await.info.status,
            monkeyproof::protocol::SessionStatus::Running
        );
    }
}
