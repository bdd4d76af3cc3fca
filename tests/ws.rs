//! WebSocket: raw protocol (binary bytes + JSON control) and compat protocol, against the real
//! server and real PTYs.

mod common;

use common::*;
use monkeyproof::protocol::RAW_SUBPROTOCOL;
use serde_json::json;

#[tokio::test]
async fn raw_attach_gets_hello_and_screen_then_echoes_input() {
    let server = Server::start();
    let session = server.exec("printf 'ready> '; exec cat").await;
    server.wait_for_screen(&session.about.id, "ready>").await;
    let mut ws = server.raw_ws(&session.about.id, "").await;
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["snapshot"], true);
    assert_eq!(hello["session"]["id"], session.about.id.as_str());
    assert_eq!(hello["offset"], 7);
    let Frame::Bytes(redraw) = next_frame(&mut ws).await else {
        panic!("expected the screen redraw")
    };
    assert!(contains(&redraw, "ready>"));

    send_bytes(&mut ws, b"round-trip-42\r").await;
    let echoed = read_raw_until(&mut ws, |b| {
        String::from_utf8_lossy(b).matches("round-trip-42").count() == 2
    })
    .await;
    assert!(contains(&echoed, "round-trip-42\r\n"));
    assert_eq!(
        server.detail(&session.about.id).await.info.now.ws_clients,
        1
    );
    drop(ws);
    server.wait_for_viewers(&session.about.id, 0).await;
}

#[tokio::test]
async fn raw_resize_both_ways_and_bad_control_messages() {
    let server = Server::start();
    let session = server
        .create(json!({"task": "stty size; read a; stty size; read b", "cols": 80, "rows": 24}))
        .await;
    let mut ws = server.raw_ws(&session.about.id, "").await;
    read_raw_until(&mut ws, |b| contains(b, "24 80")).await;
    send_json(&mut ws, json!({"type": "resize", "cols": 132, "rows": 43})).await;
    // The server announces the new size to every viewer, this one included.
    loop {
        if let Frame::Json(msg) = next_frame(&mut ws).await
            && msg["type"] == "resize"
        {
            assert_eq!(
                (msg["cols"].clone(), msg["rows"].clone()),
                (json!(132), json!(43))
            );
            break;
        }
    }
    send_bytes(&mut ws, b"\r").await;
    read_raw_until(&mut ws, |b| contains(b, "43 132")).await;

    // Bad control messages get an error frame and the connection stays usable.
    for bad in [
        "not json",
        r#"{"type":"resize","cols":0,"rows":10}"#,
        r#"{"type":"launch-missiles"}"#,
        r#"{"type":"resize","cols":"x","rows":1}"#,
    ] {
        ws_send_text(&mut ws, bad).await;
        let reply = loop {
            if let Frame::Json(msg) = next_frame(&mut ws).await
                && msg["type"] == "error"
            {
                break msg;
            }
        };
        assert!(
            reply["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad}: {reply}"
        );
    }
    send_bytes(&mut ws, b"bye\r").await;
    // The program ends: exit, then a normal close.
    let mut saw_exit = false;
    loop {
        match next_frame(&mut ws).await {
            Frame::Json(msg) if msg["type"] == "exit" => {
                assert_eq!(msg["code"], 0);
                assert_eq!(msg["status"], "exited");
                saw_exit = true;
            }
            Frame::Closed(code) => {
                assert!(saw_exit);
                assert_eq!(code, Some(1000));
                break;
            }
            _ => {}
        }
    }
}

/// Output of the resume tests: numbered lines over about a second.
const COUNTING: &str = "sleep 0.3; for i in $(seq 1 40); do echo line-$i; sleep 0.02; done";

#[tokio::test]
async fn resume_with_since_has_no_gap_and_no_duplicate() {
    let server = Server::start();
    let session = server.exec(COUNTING).await;
    let mut first = server.raw_ws(&session.about.id, "?since=0").await;
    let hello = next_json(&mut first).await;
    assert_eq!(
        (hello["offset"].clone(), hello["snapshot"].clone()),
        (json!(0), json!(false))
    );
    let part1 = read_raw_until(&mut first, |b| contains(b, "line-10\r\n")).await;
    drop(first);

    let since = part1.len();
    let mut second = server
        .raw_ws(&session.about.id, &format!("?since={since}"))
        .await;
    let hello = next_json(&mut second).await;
    assert_eq!(hello["offset"], since);
    assert_eq!(hello["snapshot"], false);
    let part2 = read_raw_until_closed(&mut second).await;
    let mut joined = part1;
    joined.extend_from_slice(&part2);
    assert_eq!(joined, server.transcript(&session.about.id).await);
    assert_each_line_once(&joined, 40);
}

#[tokio::test]
async fn resume_from_an_offset_no_longer_in_memory_resyncs() {
    // One line of ring: 512 bytes in memory.
    let server = Server::start_with(&[("OUTPUT_BUFFER_SIZE", "1")]);
    let session = server
        .exec("for i in $(seq 1 300); do echo filler-line-$i; done; echo LAST; sleep 30")
        .await;
    server.wait_for_screen(&session.about.id, "LAST").await;
    let mut ws = server.raw_ws(&session.about.id, "?since=0").await;
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["snapshot"], false);
    let resync = next_json(&mut ws).await;
    assert_eq!(resync["type"], "resync");
    assert_eq!(resync["missed"], 0);
    let total = server.detail(&session.about.id).await.info.now.output_bytes;
    assert_eq!(resync["offset"], total);
    let Frame::Bytes(redraw) = next_frame(&mut ws).await else {
        panic!("expected a redraw after resync")
    };
    assert!(contains(&redraw, "LAST"));
    // An offset beyond the end is treated the same way.
    let mut ws = server.raw_ws(&session.about.id, "?since=999999999").await;
    next_json(&mut ws).await;
    assert_eq!(next_json(&mut ws).await["type"], "resync");
    // A malformed offset is refused before the upgrade.
    let req = server.ws_request(
        &session.about.id,
        "?since=-4",
        &[RAW_SUBPROTOCOL],
        Some(TOKEN),
    );
    assert_eq!(server.ws_status(req).await, 400);
}

#[tokio::test]
async fn viewers_in_step_and_a_late_one_get_identical_bytes() {
    // Viewers in step share each chunk read from the ring (see engine/session/shared_reads.rs);
    // one that joins later at another offset reads its own, and nobody's bytes may suffer.
    let server = Server::start();
    let session = server
        .exec("sleep 0.4; for i in $(seq 1 3000); do printf '\\033[3%dmrow %d \\342\\224\\200 \\344\\270\\255\\n' $((i % 8)) $i; [ $i = 1500 ] && sleep 0.3; done")
        .await;
    let in_step = futures_util::future::join_all(
        (0..8).map(|_| server.raw_ws(&session.about.id, "?since=0")),
    )
    .await;
    let late = async {
        server.wait_for_screen(&session.about.id, "row 1500 ").await;
        let mut ws = server.raw_ws(&session.about.id, "?since=5000").await;
        collect_output(&mut ws).await
    };
    let (in_step, late) = tokio::join!(
        futures_util::future::join_all(
            in_step
                .into_iter()
                .map(|mut ws| async move { collect_output(&mut ws).await })
        ),
        late
    );
    let transcript = server.transcript(&session.about.id).await;
    assert!(transcript.len() > 60_000);
    for (i, bytes) in in_step.iter().enumerate() {
        assert!(
            bytes == &transcript,
            "viewer {i} differs from the transcript"
        );
    }
    assert!(
        late == transcript[5000..],
        "the late viewer differs from the transcript"
    );
}

#[tokio::test]
async fn compat_protocol_catchup_stdout_stdin_and_exit() {
    let server = Server::start();
    let session = server
        .exec("echo first; read reply; printf 'got=%s caf\\303' \"$reply\"; sleep 0.3; printf '\\251\\n'; exit 3")
        .await;
    server.wait_for_screen(&session.about.id, "first").await;
    let mut ws = server.compat_ws(&session.about.id).await;
    let catchup = next_json(&mut ws).await;
    assert_eq!(catchup["type"], "catchup");
    assert_eq!(catchup["id"], session.about.id.as_str());
    assert_eq!(catchup["status"], "running");
    assert_eq!(catchup["exitCode"], serde_json::Value::Null);
    assert!(catchup["task"].as_str().unwrap().starts_with("echo first"));
    assert!(catchup["data"].as_str().unwrap().contains("first"));

    // A malformed message gets an error; the connection stays open.
    ws_send_text(&mut ws, r#"{"type":"dance"}"#).await;
    let error = next_json(&mut ws).await;
    assert_eq!(error["type"], "error");
    assert!(error["error"].is_string());

    send_json(&mut ws, json!({"type": "stdin", "data": "yes\r"})).await;
    let mut stdout = String::new();
    let exit = loop {
        let msg = next_json(&mut ws).await;
        match msg["type"].as_str().unwrap() {
            "stdout" => stdout.push_str(msg["data"].as_str().unwrap()),
            "exit" => break msg,
            other => panic!("unexpected {other}: {msg}"),
        }
    };
    assert!(stdout.contains("got=yes café\r\n"), "{stdout:?}");
    assert!(
        !stdout.contains('\u{fffd}'),
        "a character was split: {stdout:?}"
    );
    assert_eq!(exit["code"], 3);
    assert!(exit["duration"].as_u64().unwrap() >= 300);
    assert!(matches!(
        next_frame(&mut ws).await,
        Frame::Closed(Some(1000))
    ));
}

#[tokio::test]
async fn compat_protocol_reports_kill_and_resize() {
    let server = Server::start();
    let session = server.exec("stty size; read x; stty size; sleep 30").await;
    server.wait_for_screen(&session.about.id, "24 80").await;
    let mut ws = server.compat_ws(&session.about.id).await;
    assert_eq!(next_json(&mut ws).await["type"], "catchup");
    send_json(&mut ws, json!({"type": "resize", "cols": 101, "rows": 33})).await;
    send_json(&mut ws, json!({"type": "stdin", "data": "\r"})).await;
    let mut stdout = String::new();
    while !stdout.contains("33 101") {
        let msg = next_json(&mut ws).await;
        if msg["type"] == "stdout" {
            stdout.push_str(msg["data"].as_str().unwrap());
        }
    }
    server
        .delete(&format!("/sessions/{}", session.about.id))
        .await;
    loop {
        let msg = next_json(&mut ws).await;
        if msg["type"] == "killed" {
            break;
        }
        assert_eq!(msg["type"], "stdout", "{msg}");
    }
    assert!(matches!(
        next_frame(&mut ws).await,
        Frame::Closed(Some(1000))
    ));
}

#[tokio::test]
async fn websocket_auth_and_origin_checks() {
    let server = Server::start();
    let session = server.exec("sleep 30").await;
    let id = &session.about.id;
    // No token at all: 401, and the same for an id that does not exist (no hint).
    assert_eq!(
        server.ws_status(server.ws_request(id, "", &[], None)).await,
        401
    );
    assert_eq!(
        server
            .ws_status(server.ws_request("nope", "", &[], None))
            .await,
        401
    );
    // Token as query (compat) and as a subprotocol entry (browsers).
    let req = server.ws_request(id, &format!("?token={TOKEN}"), &[], None);
    assert_eq!(server.ws_status(req).await, 101);
    let token_protocol = format!("monkeyproof.token.{TOKEN}");
    let req = server.ws_request(id, "", &[RAW_SUBPROTOCOL, &token_protocol], None);
    let (_, res) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(res.headers()["sec-websocket-protocol"], RAW_SUBPROTOCOL);
    // A foreign Origin is refused; the server's own is fine.
    let mut req = server.ws_request(id, "", &[RAW_SUBPROTOCOL], Some(TOKEN));
    req.headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    assert_eq!(server.ws_status(req).await, 403);
    let mut req = server.ws_request(id, "", &[RAW_SUBPROTOCOL], Some(TOKEN));
    req.headers_mut()
        .insert("origin", format!("http://{}", server.addr).parse().unwrap());
    assert_eq!(server.ws_status(req).await, 101);
    // With a valid token, an unknown id is 404.
    let req = server.ws_request("nope", "", &[RAW_SUBPROTOCOL], Some(TOKEN));
    assert_eq!(server.ws_status(req).await, 404);

    // An allow-listed origin.
    let server = Server::start_with(&[("MONKEYPROOF_ALLOWED_ORIGINS", "https://ops.example.com")]);
    let session = server.exec("sleep 30").await;
    let mut req = server.ws_request(&session.about.id, "", &[], Some(TOKEN));
    req.headers_mut()
        .insert("origin", "https://ops.example.com".parse().unwrap());
    assert_eq!(server.ws_status(req).await, 101);
}

async fn ws_send_text(ws: &mut Ws, text: &str) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        text.to_owned().into(),
    ))
    .await
    .unwrap();
}

/// Raw protocol: every output byte until the connection closes; fails on a resync.
async fn collect_output(ws: &mut Ws) -> Vec<u8> {
    let mut bytes = Vec::new();
    loop {
        match next_frame(ws).await {
            Frame::Bytes(b) => bytes.extend_from_slice(&b),
            Frame::Json(msg) if msg["type"] == "resync" => panic!("viewer fell behind"),
            Frame::Json(_) => {}
            Frame::Closed(_) => return bytes,
        }
    }
}

#[tokio::test]
async fn a_viewer_that_falls_behind_is_resynced_and_others_are_not_held_up() {
    // A 512-byte ring, and a flood far larger than the socket buffers.
    let server = Server::start_with(&[("OUTPUT_BUFFER_SIZE", "1")]);
    let session = server
        .exec("sleep 0.5; yes flood-line | head -c 12000000; echo; echo FLOOD-DONE; read x; echo AFTER-$x; sleep 30")
        .await;
    let mut stalled = server.raw_ws(&session.about.id, "?since=0").await;
    let mut compat = server.compat_ws(&session.about.id).await;
    // The program is not held up by the stalled viewers: it finishes its flood.
    server
        .wait_for_screen(&session.about.id, "FLOOD-DONE")
        .await;
    let total = server.detail(&session.about.id).await.info.now.output_bytes;
    assert!(total > 12_000_000);

    // Both viewers learn that they missed output.
    loop {
        match next_frame(&mut stalled).await {
            Frame::Json(msg) if msg["type"] == "resync" => break,
            Frame::Closed(code) => panic!("closed: {code:?}"),
            _ => {}
        }
    }
    loop {
        let msg = next_json(&mut compat).await;
        if msg["type"] == "gap" {
            assert!(msg["skipped"].as_u64().unwrap() > 0);
            break;
        }
    }
    // And both are live again afterwards.
    server
        .post(
            &format!("/sessions/{}/input", session.about.id),
            json!({"input": "go", "enter": true}),
        )
        .await;
    read_raw_until(&mut stalled, |b| contains(b, "AFTER-go")).await;
    let mut text = String::new();
    while !text.contains("AFTER-go") {
        let msg = next_json(&mut compat).await;
        if msg["type"] == "stdout" {
            text.push_str(msg["data"].as_str().unwrap());
        }
    }
    // The transcript still holds every byte.
    let transcript = server.transcript(&session.about.id).await;
    let flood = "flood-line\n".repeat(1_090_910);
    let expected =
        flood[..12_000_000].replace('\n', "\r\n") + "\r\nFLOOD-DONE\r\ngo\r\nAFTER-go\r\n";
    assert!(
        transcript == expected.as_bytes(),
        "the transcript lost or changed bytes"
    );
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_dropped() {
    // Silent for two intervals (over a second) gets a peer dropped.
    let server = Server::start_with(&[("MONKEYPROOF_WS_PING_MS", "600")]);
    let session = server.exec("sleep 30").await;
    // Never read: tungstenite answers pings only while reading.
    let _silent = server.raw_ws(&session.about.id, "").await;
    server.wait_for_viewers(&session.about.id, 1).await;
    server.wait_for_viewers(&session.about.id, 0).await;
}

#[tokio::test]
async fn flow_control_keeps_at_most_a_window_in_flight() {
    let server = Server::start();
    let session = server
        .exec("sleep 0.3; yes 0123456789012345678901234567890123456789012345678901234567890123456789 | head -c 5000000; echo; echo FLOW-END; sleep 30")
        .await;
    // Flow control from the first byte.
    let mut ws = server.raw_ws(&session.about.id, "?since=0&flow=1").await;
    assert_eq!(next_json(&mut ws).await["type"], "hello");
    server.wait_for_screen(&session.about.id, "FLOW-END").await;

    // Without further acks the server stops after one window (plus at most one chunk).
    let mut received = 0usize;
    while let Ok(frame) =
        tokio::time::timeout(std::time::Duration::from_millis(500), next_frame(&mut ws)).await
    {
        match frame {
            Frame::Bytes(b) => received += b.len(),
            Frame::Json(msg) if msg["type"] == "event" => {}
            Frame::Json(msg) => panic!("unexpected {msg}"),
            Frame::Closed(code) => panic!("closed: {code:?}"),
        }
    }
    let window = monkeyproof::protocol::FLOW_WINDOW as usize;
    assert!(
        received > 0 && received <= window + 64 * 1024,
        "{received} bytes in flight"
    );

    // Acknowledging resumes it; having fallen out of memory, the client is resynced.
    send_json(&mut ws, json!({"type": "ack", "offset": received})).await;
    let resync = loop {
        match next_frame(&mut ws).await {
            Frame::Json(msg) if msg["type"] == "resync" => break msg,
            Frame::Closed(code) => panic!("closed: {code:?}"),
            _ => {}
        }
    };
    assert_eq!(resync["missed"].as_u64().unwrap() as usize, received);
    let Frame::Bytes(redraw) = next_frame(&mut ws).await else {
        panic!("expected a redraw")
    };
    assert!(contains(&redraw, "FLOW-END"));

    // Acks of offsets before the resync, still on their way, do not stall the stream.
    send_json(&mut ws, json!({"type": "ack", "offset": 0})).await;
    send_bytes(&mut ws, b"typed-after-resync").await;
    read_raw_until(&mut ws, |b| contains(b, "typed-after-resync")).await;
}

#[tokio::test]
async fn a_slow_flow_controlled_client_keeps_up_through_resyncs() {
    let server = Server::start();
    let session = server
        .exec("sleep 0.3; yes 0123456789012345678901234567890123456789012345678901234567890123456789 | head -c 20000000; echo; echo SLOW-END; sleep 30")
        .await;
    let mut ws = server.raw_ws(&session.about.id, "?since=0").await;
    let hello = next_json(&mut ws).await;
    let mut offset = hello["offset"].as_u64().unwrap();
    let mut redraw_next = false;
    let mut resyncs = 0;
    let mut tail = Vec::new();
    send_json(&mut ws, json!({"type": "ack", "offset": offset})).await;
    loop {
        match next_frame(&mut ws).await {
            Frame::Json(msg) if msg["type"] == "resync" => {
                resyncs += 1;
                offset = msg["offset"].as_u64().unwrap();
                redraw_next = true;
            }
            Frame::Json(msg) if msg["type"] == "event" => {}
            Frame::Json(msg) => panic!("unexpected {msg}"),
            Frame::Bytes(b) => {
                if redraw_next {
                    redraw_next = false;
                } else {
                    offset += b.len() as u64;
                }
                tail.extend_from_slice(&b);
                if contains(&tail, "SLOW-END") {
                    break;
                }
                tail.drain(..tail.len().saturating_sub(16));
                // A slow renderer: a little time per frame, then the ack.
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                send_json(&mut ws, json!({"type": "ack", "offset": offset})).await;
            }
            Frame::Closed(code) => panic!("closed: {code:?}"),
        }
    }
    assert!(resyncs > 0, "a slow client should have been resynced");
}

#[tokio::test]
async fn raw_viewers_get_activity_events() {
    let server = Server::start_with(&[("MONKEYPROOF_BUSY_MS", "200")]);
    let session = server
        .exec("read x; printf '\\033]0;ws-title\\007\\a'; echo out; sleep 30")
        .await;
    let mut ws = server.raw_ws(&session.about.id, "").await;
    next_json(&mut ws).await;
    send_bytes(&mut ws, b"\r").await;
    let mut seen = Vec::new();
    while !(seen.contains(&"title".to_owned())
        && seen.contains(&"bell".to_owned())
        && seen.contains(&"idle".to_owned()))
    {
        if let Frame::Json(msg) = next_frame(&mut ws).await
            && msg["type"] == "event"
        {
            assert_eq!(msg["event"]["session"], session.about.id.as_str());
            if msg["event"]["type"] == "title" {
                assert_eq!(msg["event"]["title"], "ws-title");
            }
            seen.push(msg["event"]["type"].as_str().unwrap().to_owned());
        }
    }
    let busy = seen.iter().position(|t| t == "busy").expect("a busy event");
    let idle = seen
        .iter()
        .position(|t| t == "idle")
        .expect("an idle event");
    assert!(busy < idle, "{seen:?}");
}
