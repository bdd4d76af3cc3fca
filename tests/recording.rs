//! `GET /sessions/:id/recording`: asciicast v3 and v2, whose output events are the transcript,
//! with the times the output was read, the resizes and the exit; across a restart too.

mod common;

use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The header and events of a recording.
async fn recording(server: &Server, id: &str, format: &str) -> (Value, Vec<Value>) {
    let res = server
        .http
        .get(server.url(&format!("/sessions/{id}/recording?format={format}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/x-asciicast"
    );
    let text = res.text().await.unwrap();
    let mut lines = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap());
    (lines.next().unwrap(), lines.collect())
}

fn output_of(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e[1] == "o")
        .map(|e| e[2].as_str().unwrap())
        .collect()
}

/// Seconds since the start at each event (v3 intervals added up).
fn times(events: &[Value], intervals: bool) -> Vec<f64> {
    let mut at = 0.0;
    events
        .iter()
        .map(|e| {
            let t = e[0].as_f64().unwrap();
            at = if intervals { at + t } else { t };
            at
        })
        .collect()
}

/// The time of the first output event that (with those before) contains `text`.
fn time_of(events: &[Value], times: &[f64], text: &str) -> f64 {
    let mut seen = String::new();
    for (event, at) in events.iter().zip(times) {
        if event[1] == "o" {
            seen.push_str(event[2].as_str().unwrap());
            if seen.contains(text) {
                return *at;
            }
        }
    }
    panic!("{text:?} never shows in {events:?}")
}

#[tokio::test]
async fn a_recording_is_the_transcript_with_its_timing_resizes_and_exit() {
    let server = Server::start();
    let session = server
        .create(json!({
            "task": "printf 'one\\n'; sleep 0.4; printf 'two\\n'; sleep 0.3; printf 'caf\\303'; \
                     sleep 0.1; printf '\\251 \\033[31mred\\033[0m\\n'; exit 3",
            "cols": 90, "rows": 20,
        }))
        .await;
    server.wait_for_screen(&session.about.id, "one").await;
    let (status, _) = server
        .post(
            &format!("/sessions/{}/resize", session.about.id),
            json!({"cols": 100, "rows": 30}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    server.wait_for_end(&session.about.id).await;
    let transcript = String::from_utf8(server.transcript(&session.about.id).await).unwrap();
    assert!(transcript.contains("café"));
    // The marks are written in batches: give the last one its moment.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (header, events) = recording(&server, &session.about.id, "v3").await;
    assert_eq!(header["version"], 3);
    assert_eq!(
        header["term"],
        json!({"cols": 90, "rows": 20, "type": "xterm-256color"})
    );
    assert_eq!(output_of(&events), transcript);
    let at = times(&events, true);
    let gap = time_of(&events, &at, "two") - time_of(&events, &at, "one");
    assert!(
        (0.3..2.0).contains(&gap),
        "one → two took {gap} s: {events:?}"
    );
    let resize = events.iter().position(|e| e[1] == "r").expect("a resize");
    assert_eq!(events[resize][2], "100x30");
    assert!(output_of(&events[..resize]).contains("one"));
    assert!(!output_of(&events[..resize]).contains("two"));
    assert_eq!(events.last().unwrap()[1], "x");
    assert_eq!(events.last().unwrap()[2], "3");

    let (header, events) = recording(&server, &session.about.id, "v2").await;
    assert_eq!(
        (
            header["version"].clone(),
            header["width"].clone(),
            header["height"].clone()
        ),
        (json!(2), json!(90), json!(20))
    );
    assert_eq!(output_of(&events), transcript);
    let at = times(&events, false);
    assert!(at.windows(2).all(|w| w[0] <= w[1]), "{at:?}");
    assert!(events.iter().all(|e| e[1] != "x"), "v2 has no exit event");

    // The asciinema CLI plays the v2 file back as the transcript.
    let v2 = server
        .http
        .get(server.url(&format!(
            "/sessions/{}/recording?format=v2",
            session.about.id
        )))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let file = std::env::temp_dir().join(format!("mp-cast-{}.cast", std::process::id()));
    std::fs::write(&file, v2).unwrap();
    let played = std::process::Command::new("python3")
        .args(["-m", "asciinema", "cat"])
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(played.status.success(), "{played:?}");
    assert_eq!(String::from_utf8_lossy(&played.stdout), transcript);

    let (status, body) = server
        .get(&format!(
            "/sessions/{}/recording?format=v9",
            session.about.id
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        server.get("/sessions/nope/recording").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_recording_spans_a_restart() {
    let first = Server::launch(Launch {
        env: &[("MONKEYPROOF_ON_EXIT", "keep")],
        ..Launch::default()
    });
    let session = first
        .exec("echo before; sleep 1.2; echo after; sleep 0.2; exit 0")
        .await;
    first.wait_for_screen(&session.about.id, "before").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let dir = first.stop_keeping_data(Signal::SIGTERM);
    let second = Server::launch(Launch {
        data_dir: Some(dir),
        ..Launch::default()
    });
    second.wait_for_end(&session.about.id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let transcript = String::from_utf8(second.transcript(&session.about.id).await).unwrap();
    let (_, events) = recording(&second, &session.about.id, "v3").await;
    assert_eq!(output_of(&events), transcript);
    let at = times(&events, true);
    let gap = time_of(&events, &at, "after") - time_of(&events, &at, "before");
    assert!(
        (1.0..3.0).contains(&gap),
        "before → after took {gap} s: {events:?}"
    );
    assert_eq!(events.last().unwrap()[2], "0");
}

#[tokio::test]
async fn input_is_recorded_only_when_asked() {
    let server = Server::start();
    let mut ids = Vec::new();
    for record_input in [true, false] {
        let session = server
            .create(json!({"task": "cat", "recordInput": record_input}))
            .await;
        assert_eq!(session.about.record_input, record_input);
        server
            .post(
                &format!("/sessions/{}/input", session.about.id),
                json!({"input": "typed-secret", "enter": true}),
            )
            .await;
        server
            .wait_for_screen(&session.about.id, "typed-secret")
            .await;
        server
            .delete(&format!("/sessions/{}", session.about.id))
            .await;
        server.wait_for_end(&session.about.id).await;
        ids.push(session.about.id);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, events) = recording(&server, &ids[0], "v3").await;
    let typed: Vec<_> = events.iter().filter(|e| e[1] == "i").collect();
    assert_eq!(typed.len(), 1, "{events:?}");
    assert_eq!(typed[0][2], "typed-secret\r");
    // The echo follows what was typed.
    let at = events.iter().position(|e| e[1] == "i").unwrap();
    assert!(output_of(&events[at..]).contains("typed-secret"));
    let (_, events) = recording(&server, &ids[1], "v3").await;
    assert!(events.iter().all(|e| e[1] != "i"), "{events:?}");
    assert!(output_of(&events).contains("typed-secret"));
}
