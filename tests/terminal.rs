//! The terminal of record: the server answers programs' terminal queries itself, once, with or
//! without viewers; viewers' duplicate answers are dropped.

mod common;

use std::collections::HashMap;

use common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// Starts the query program at `cols`×`rows`; returns its session id.
async fn start_queries(server: &Server, cols: u16, rows: u16) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/queries.py");
    let session = server
        .create(json!({"task": format!("exec python3 {script}"), "cols": cols, "rows": rows}))
        .await;
    // Wait until it is waiting for its go-ahead (raw mode set).
    server
        .wait_for(&session.about.id, "the program to start", |d| {
            d.info.now.idle_ms > 300
        })
        .await;
    session.about.id
}

async fn go(server: &Server, id: &str) {
    server
        .post(&format!("/sessions/{id}/input"), json!({"keys": ["g"]}))
        .await;
}

/// The program's report: query name → what it received.
async fn report(server: &Server, id: &str) -> HashMap<String, String> {
    let detail = server
        .wait_for(id, "the report", |d| d.recent_output.contains("DONE"))
        .await;
    detail
        .recent_output
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn expect_answers(got: &HashMap<String, String>, cols: u16, rows: u16) {
    let expected = [
        ("cpr", r"b'\x1b[1;6R'".to_owned()),
        ("status", r"b'\x1b[0n'".to_owned()),
        ("da1", r"b'\x1b[?1;2c'".to_owned()),
        ("da2", r"b'\x1b[>0;276;0c'".to_owned()),
        ("mode2004", r"b'\x1b[?2004;1$y'".to_owned()),
        ("fg", r"b'\x1b]10;rgb:d8d8/dede/e9e9\x1b\\'".to_owned()),
        ("bg", r"b'\x1b]11;rgb:1111/1414/1818\x1b\\'".to_owned()),
        ("cells", format!(r"b'\x1b[8;{rows};{cols}t'")),
        ("pixels", format!(r"b'\x1b[4;{};{}t'", rows * 16, cols * 8)),
        ("kitty", "TIMEOUT".to_owned()),
        ("EXTRA", "b''".to_owned()),
    ];
    for (name, want) in expected {
        assert_eq!(got.get(name), Some(&want), "{name}: {got:#?}");
    }
}

#[tokio::test]
async fn queries_are_answered_with_no_viewer_attached() {
    let server = Server::start();
    let id = start_queries(&server, 90, 30).await;
    // The size asked for is the size after a resize.
    server
        .post(
            &format!("/sessions/{id}/resize"),
            json!({"cols": 100, "rows": 40}),
        )
        .await;
    go(&server, &id).await;
    expect_answers(&report(&server, &id).await, 100, 40);
}

#[tokio::test]
async fn viewers_that_answer_too_do_not_double_the_answers() {
    let server = Server::start();
    let id = start_queries(&server, 80, 24).await;
    let mut viewers = Vec::new();
    for _ in 0..2 {
        let mut ws = server.raw_ws(&id, "").await;
        next_json(&mut ws).await;
        viewers.push(ws);
    }
    // Each viewer behaves like a terminal emulator: it answers every query it sees (but the
    // kitty one, which xterm.js does not know).
    let answers: [(&str, &[u8]); 9] = [
        ("\x1b[6n", b"\x1b[9;9R"),
        ("\x1b[5n", b"\x1b[0n"),
        ("\x1b[c", b"\x1b[?62;22c"),
        ("\x1b[>c", b"\x1b[>41;300;0c"),
        ("\x1b[?2004$p", b"\x1b[?2004;2$y"),
        ("\x1b]10;?", b"\x1b]10;rgb:0000/0000/0000\x1b\\"),
        ("\x1b]11;?", b"\x1b]11;rgb:ffff/ffff/ffff\x07"),
        ("\x1b[18t", b"\x1b[8;1;1t"),
        ("\x1b[14t", b"\x1b[4;1;1t"),
    ];
    let mut tasks = tokio::task::JoinSet::new();
    for mut ws in viewers {
        tasks.spawn(async move {
            let mut seen = Vec::new();
            let mut answered = 0;
            while answered < answers.len() {
                match next_frame(&mut ws).await {
                    Frame::Bytes(b) => seen.extend_from_slice(&b),
                    Frame::Closed(_) => break,
                    Frame::Json(_) => continue,
                }
                while answered < answers.len() && contains(&seen, answers[answered].0) {
                    ws.send(Message::Binary(answers[answered].1.to_vec().into()))
                        .await
                        .unwrap();
                    answered += 1;
                }
            }
            ws
        });
    }
    go(&server, &id).await;
    let got = report(&server, &id).await;
    expect_answers(&got, 80, 24);
    while tasks.join_next().await.is_some() {}
    // Input shaped like an answer to a query nobody asked is typing: it reaches the program,
    // which ends when it reads anything.
    let mut ws = server.raw_ws(&id, "").await;
    next_json(&mut ws).await;
    ws.send(Message::Binary(b"\x1b[6;16;8t".to_vec().into()))
        .await
        .unwrap();
    let ended = server.wait_for_end(&id).await;
    assert_eq!(ended.info.now.exit_code, Some(0));
}

#[tokio::test]
async fn full_screen_programs_draw_with_nobody_watching() {
    let server = Server::start();
    let less = server
        .create(json!({"task": "seq 1 200 | less", "cols": 60, "rows": 20}))
        .await;
    let detail = server.wait_for_screen(&less.about.id, "19").await;
    assert_eq!(detail.screen.lines[0], "1");
    assert_eq!(detail.screen.lines[18], "19");
    assert!(
        detail.screen.lines[19].starts_with(':'),
        "{:?}",
        detail.screen.lines
    );
    server
        .post(
            &format!("/sessions/{}/input", less.about.id),
            json!({"keys": ["q"]}),
        )
        .await;
    server.wait_for_end(&less.about.id).await;

    let vim = server
        .create(json!({"task": "vim -u NONE -i NONE -N", "cols": 80, "rows": 24}))
        .await;
    let detail = server
        .wait_for_screen(&vim.about.id, "VIM - Vi IMproved")
        .await;
    assert!(detail.screen.alternate_screen);
    assert!(
        detail.screen.lines[1..20]
            .iter()
            .filter(|l| l.starts_with('~'))
            .count()
            > 10
    );
}
