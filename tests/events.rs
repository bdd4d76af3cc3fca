//! Server-Sent Events: the event feed of all sessions and of one, resumable with Last-Event-ID.

mod common;

use base64::Engine as _;
use common::*;
use monkeyproof::protocol::SessionEvent;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn the_feed_reports_a_sessions_life_in_order() {
    let server = Server::start_with(&[("MONKEYPROOF_BUSY_MS", "200"), ("SESSION_TTL_MS", "600")]);
    let mut feed = Sse::open(&server, "/events?data=1", None).await;
    let session = server
        .exec("printf '\\033]0;the-title\\007'; echo hello-events; printf '\\a'; sleep 0.6; exit 4")
        .await;
    let events = feed.until(&session.about.id, "removed").await;
    let ids: Vec<u64> = events.iter().map(|e| e.id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids must grow: {ids:?}"
    );
    let mine: Vec<&SessionEvent> = events
        .iter()
        .filter(|e| e.session == session.about.id)
        .collect();
    let kinds: Vec<String> = mine.iter().map(|e| type_of(e)).collect();
    let position = |k: &str| {
        kinds
            .iter()
            .position(|x| x == k)
            .unwrap_or_else(|| panic!("no {k} in {kinds:?}"))
    };
    assert_eq!(position("created"), 0);
    assert!(position("output") < position("exit"));
    assert!(position("busy") < position("idle"), "{kinds:?}");
    position("title");
    position("bell");
    assert!(position("exit") < position("removed"));

    let value = |e: &SessionEvent| serde_json::to_value(&e.kind).unwrap();
    let title = mine.iter().find(|e| type_of(e) == "title").unwrap();
    assert_eq!(value(title)["title"], "the-title");
    let exit = mine.iter().find(|e| type_of(e) == "exit").unwrap();
    assert_eq!(value(exit)["code"], 4);
    assert_eq!(value(exit)["status"], "exited");
    // Output events tile the output without gap or overlap, and carry the bytes when asked.
    let mut expected_offset = 0;
    let mut bytes = Vec::new();
    for output in mine.iter().filter(|e| type_of(e) == "output") {
        let v = value(output);
        assert_eq!(v["offset"], expected_offset);
        expected_offset += v["length"].as_u64().unwrap();
        bytes.extend(
            base64::engine::general_purpose::STANDARD
                .decode(v["data"].as_str().unwrap())
                .unwrap(),
        );
    }
    assert!(contains(&bytes, "hello-events\r\n"));
    assert_eq!(expected_offset, bytes.len() as u64);
}

#[tokio::test]
async fn types_narrows_the_feed_and_an_unknown_type_is_refused() {
    let server = Server::start();
    let mut feed = Sse::open(&server, "/events?types=created,exit", None).await;
    let session = server.exec("echo some-output; exit 2").await;
    let kinds: Vec<String> = feed
        .until(&session.about.id, "exit")
        .await
        .iter()
        .map(type_of)
        .collect();
    assert_eq!(kinds, ["created", "exit"], "only the types asked for");

    let (status, body) = server.get("/events?types=exit,outptu").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("\"outptu\"") && error.contains("output"),
        "{error}"
    );
}

#[tokio::test]
async fn a_session_feed_resumes_after_last_event_id() {
    let server = Server::start();
    let session = server
        .exec("stty size; read x; echo second; sleep 30")
        .await;
    let path = format!("/sessions/{}/events", session.about.id);
    // An id this run never had (ids start at the start time) gets a reset, then all kept.
    let mut feed = Sse::open(&server, &path, Some(0)).await;
    assert_eq!(type_of(&feed.next().await), "reset");
    let created = feed.next().await;
    assert_eq!(type_of(&created), "created");
    let first_output = feed.until(&session.about.id, "output").await;
    let resume_after = first_output.last().unwrap().id;

    server
        .post(
            &format!("/sessions/{}/resize", session.about.id),
            json!({"cols": 100, "rows": 30}),
        )
        .await;
    server
        .post(
            &format!("/sessions/{}/input", session.about.id),
            json!({"input": "go", "enter": true}),
        )
        .await;
    let resize = feed.until(&session.about.id, "resize").await;
    let resize_event = resize.last().unwrap().clone();
    assert_eq!(
        serde_json::to_value(&resize_event.kind).unwrap()["cols"],
        100
    );
    drop(feed);

    // Reconnecting with Last-Event-ID gets exactly what followed, nothing before it.
    let mut resumed = Sse::open(&server, &path, Some(resume_after)).await;
    let again = resumed.until(&session.about.id, "resize").await;
    assert!(
        again
            .iter()
            .all(|e| e.id > resume_after && e.session == session.about.id)
    );
    assert_eq!(again.last().unwrap(), &resize_event);
    assert_eq!(
        again,
        resize
            .into_iter()
            .filter(|e| e.id > resume_after)
            .collect::<Vec<_>>()
    );

    // Only this session's events.
    server.exec("echo other").await;
    server
        .post(
            &format!("/sessions/{}/input", session.about.id),
            json!({"keys": ["x"]}),
        )
        .await;
    let next = resumed.until(&session.about.id, "output").await;
    assert!(next.iter().all(|e| e.session == session.about.id));

    let (status, body) = server.get(&format!("{path}?lastEventId=abc")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        server.get("/sessions/nope/events").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_id_from_another_run_gets_a_reset_and_ids_never_repeat_across_runs() {
    let first = Server::start();
    let a = first.exec("echo one").await;
    first.wait_for_end(&a.about.id).await;
    let mut feed = Sse::open(&first, &format!("/sessions/{}/events", a.about.id), Some(0)).await;
    assert_eq!(type_of(&feed.next().await), "reset");
    let last_of_first_run = feed.until(&a.about.id, "exit").await.last().unwrap().id;
    drop(feed);
    drop(first);

    let second = Server::start();
    let b = second.exec("echo two; sleep 30").await;
    // What an EventSource sends after the server restarted: an id of the earlier run. The
    // feed says so first, then gives every event it has.
    let mut resumed = Sse::open(&second, "/events", Some(last_of_first_run)).await;
    let reset = resumed.next().await;
    assert_eq!(type_of(&reset), "reset");
    let created = resumed.until(&b.about.id, "created").await;
    assert!(created.last().unwrap().id > last_of_first_run);
    // An id above the newest is no better.
    let mut ahead = Sse::open(&second, "/events", Some(u64::MAX / 4)).await;
    assert_eq!(type_of(&ahead.next().await), "reset");
}

#[tokio::test]
async fn what_happens_at_a_moment_is_published_once_each_and_in_order() {
    let server = Server::start();
    let mut feed = Sse::open(&server, "/events", None).await;
    let session = server
        .exec(
            "read go; printf '\\033]0;first\\007'; sleep 0.001; printf '\\033]0;second\\007'; \
             printf '\\a'; sleep 0.2; printf '\\a\\a'; exit 5",
        )
        .await;
    let path = format!("/sessions/{}/resize", session.about.id);
    // Two resizes right after creation, well within one activity tick.
    for (cols, rows) in [(100, 30), (90, 20)] {
        let (status, _) = server
            .post(&path, json!({"cols": cols, "rows": rows}))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    server
        .post(
            &format!("/sessions/{}/input", session.about.id),
            json!({"input": "go", "enter": true}),
        )
        .await;
    let events = feed.until(&session.about.id, "exit").await;
    let mine: Vec<&SessionEvent> = events
        .iter()
        .filter(|e| e.session == session.about.id)
        .collect();
    let of = |kind: &str| -> Vec<serde_json::Value> {
        mine.iter()
            .filter(|e| type_of(e) == kind)
            .map(|e| serde_json::to_value(&e.kind).unwrap())
            .collect()
    };
    assert_eq!(type_of(mine[0]), "created");
    let resizes: Vec<(u64, u64)> = of("resize")
        .iter()
        .map(|v| (v["cols"].as_u64().unwrap(), v["rows"].as_u64().unwrap()))
        .collect();
    assert_eq!(resizes, [(100, 30), (90, 20)]);
    let titles: Vec<String> = of("title")
        .iter()
        .map(|v| v["title"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(titles, ["first", "second"]);
    let bells: Vec<u64> = of("bell")
        .iter()
        .map(|v| v["count"].as_u64().unwrap())
        .collect();
    assert_eq!(bells.last(), Some(&3));
    assert!(bells.windows(2).all(|w| w[0] < w[1]), "{bells:?}");
    let exits = of("exit");
    assert_eq!(exits.len(), 1);
    assert_eq!(exits[0]["code"], 5);
    // Every output event comes before the exit, and together they tile the whole output.
    let total: u64 = of("output")
        .iter()
        .map(|v| v["length"].as_u64().unwrap())
        .sum();
    assert_eq!(
        total,
        server.detail(&session.about.id).await.info.now.output_bytes
    );
}
