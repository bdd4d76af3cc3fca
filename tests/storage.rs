//! What sessions cost in descriptors: one each in the server (the PTY's master, for input and
//! resizes) and one each in the keeper (the master it reads), transcripts open only while in
//! use and never more than a fixed number, so 10,000 sessions fit in an open-files limit of
//! 20,000. Output goes on exactly through transcripts closed and opened again.

mod common;

use common::*;
use serde_json::json;

/// Sessions started: more than the keeper keeps transcripts open (256).
const SESSIONS: usize = 300;

/// A process's descriptors: (PTY masters, transcripts, everything).
fn descriptors(pid: u32, data_dir: &std::path::Path) -> (usize, usize, usize) {
    let transcripts = data_dir.join("transcripts");
    let targets: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .collect();
    (
        targets
            .iter()
            .filter(|t| t.starts_with("/dev/ptmx"))
            .count(),
        targets
            .iter()
            .filter(|t| t.starts_with(&transcripts))
            .count(),
        targets.len(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_costs_one_descriptor_in_the_server_and_one_in_the_keeper() {
    let server = Server::start_with(&[("MAX_SESSIONS", "400")]);
    let first = server.exec("echo ready-0; exec cat").await;
    server.wait_for_screen(&first.about.id, "ready-0").await;
    let keeper = keepers_of(&server.data_dir)[0];
    let (_, _, server_base) = descriptors(server.pid(), &server.data_dir);
    let (_, _, keeper_base) = descriptors(keeper, &server.data_dir);

    let mut ids = vec![first.about.id];
    for i in 1..SESSIONS {
        ids.push(
            server
                .exec(&format!("echo ready-{i}; exec cat"))
                .await
                .about
                .id,
        );
    }
    for (i, id) in ids.iter().enumerate() {
        server.wait_for_screen(id, &format!("ready-{i}")).await;
    }

    let (masters, transcripts, total) = descriptors(server.pid(), &server.data_dir);
    assert_eq!((masters, transcripts), (SESSIONS, 0), "server");
    assert!(
        total - server_base <= SESSIONS - 1 + 8,
        "server: {server_base} descriptors with one session, {total} with {SESSIONS}"
    );
    let (masters, transcripts, total) = descriptors(keeper, &server.data_dir);
    assert_eq!(masters, SESSIONS, "keeper");
    assert!(transcripts <= 256, "keeper: {transcripts} transcripts open");
    assert!(
        total - keeper_base <= SESSIONS - 1 + 256,
        "keeper: {keeper_base} descriptors with one session, {total} with {SESSIONS}"
    );

    // The first sessions' transcripts were closed to make room: their output goes on, whole.
    for (i, id) in ids.iter().enumerate().take(5) {
        server
            .post(
                &format!("/sessions/{id}/input"),
                json!({"input": format!("again-{i}"), "enter": true}),
            )
            .await;
    }
    for (i, id) in ids.iter().enumerate().take(5) {
        // cat's echo of the line, then cat's copy of it.
        let expected = format!("ready-{i}\r\nagain-{i}\r\nagain-{i}\r\n");
        eventually("the transcript to hold the typed line", || async {
            (server.transcript(id).await == expected.as_bytes()).then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn floods_at_once_lose_nothing_while_the_keeper_parks_them() {
    // Eight programs printing as fast as they can: the keeper reads them while the server has
    // little to take and parks them otherwise. Each session's output — the log a viewer reads
    // from and the transcript — is still every line, once, in order, while a watched session
    // beside them answers.
    let server = Server::start();
    let mut floods = Vec::new();
    for _ in 0..8 {
        floods.push(server.exec("seq 1 150000").await);
    }
    let cat = server.exec("exec cat").await;
    let mut ws = server.raw_ws(&cat.about.id, "").await;
    next_json(&mut ws).await;
    send_bytes(&mut ws, b"beside-the-floods\r").await;
    read_raw_until(&mut ws, |seen| {
        contains(seen, "beside-the-floods\r\nbeside-the-floods")
    })
    .await;
    let expected: String = (1..=150_000).map(|i| format!("{i}\r\n")).collect();
    for flood in &floods {
        let detail = server.wait_for_end(&flood.about.id).await;
        let transcript = server.transcript(&flood.about.id).await;
        assert_eq!(detail.info.now.output_bytes, transcript.len() as u64);
        assert!(
            transcript == expected.as_bytes(),
            "session {} lost or repeated output ({} bytes, {} expected)",
            flood.about.id,
            transcript.len(),
            expected.len()
        );
    }
    server.delete(&format!("/sessions/{}", cat.about.id)).await;
}
