//! The connection layer: a flood of idle or half-open connections from one address cannot make
//! the server unreachable for another; silent and slow connections are closed; requests in
//! flight and event streams are not.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A TCP connection to the server from `ip` (any 127.x.y.z).
async fn connect_from(server: &Server, ip: &str) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(format!("{ip}:0").parse().unwrap())?;
    socket.connect(server.addr.parse().unwrap()).await
}

/// How long until the server closes `stream` (reads EOF or an error), at most `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_flood_of_silent_connections_from_one_address_leaves_others_served() {
    // 256 descriptors, as the field report's run had.
    let server = Server::start_with_fd_limit(256);
    let mut flood = Vec::new();
    for _ in 0..300 {
        if let Ok(stream) = connect_from(&server, "127.0.0.2").await {
            flood.push(stream);
        }
    }
    let bystander = reqwest::Client::builder()
        .local_address("127.0.0.3".parse::<std::net::IpAddr>().unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = Instant::now();
    let res = bystander.get(server.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = bystander
        .get(server.url("/sessions"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Sessions can still start: the connections did not take the sessions' descriptors.
    server.exec("echo still-room").await;
    // Beyond its share, the flooding address was told so and let go.
    let mut answered = 0;
    for stream in &mut flood {
        let mut buf = [0u8; 256];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(20), stream.read(&mut buf)).await
            && String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 503")
        {
            answered += 1;
        }
    }
    assert!(answered > 200, "only {answered} refused with 503");
}

#[tokio::test]
async fn each_address_gets_at_most_its_share_of_connections() {
    let server = Server::start_with(&[("MONKEYPROOF_MAX_CONNECTIONS_PER_CLIENT", "5")]);
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from(&server, "127.0.0.2").await.unwrap());
    }
    // Let the server take them in before the sixth.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut sixth = connect_from(&server, "127.0.0.2").await.unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), sixth.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(answer.contains(r#"{"error":"Too many connections from this address"}"#));
    // Another address is unaffected, and a closed connection gives its place back.
    let server = &server;
    let health_from = |ip: &'static str| async move {
        let res = client_from(ip).get(server.url("/health")).send().await;
        res.unwrap().status()
    };
    assert_eq!(health_from("127.0.0.3").await, StatusCode::OK);
    held.pop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(health_from("127.0.0.2").await, StatusCode::OK);
}

#[tokio::test]
async fn silent_and_slow_connections_are_closed_but_requests_in_flight_are_not() {
    let server = Server::start_with(&[
        ("MONKEYPROOF_IDLE_TIMEOUT_MS", "500"),
        ("MONKEYPROOF_HEADER_TIMEOUT_MS", "800"),
    ]);
    // Silent from the start.
    let mut silent = connect_from(&server, "127.0.0.2").await.unwrap();
    let took = closed_within(&mut silent, Duration::from_secs(5))
        .await
        .expect("a silent connection stayed open");
    assert!(took >= Duration::from_millis(400), "{took:?}");

    // Slow: a byte of its headers every 100 ms is still too slow.
    let mut slow = connect_from(&server, "127.0.0.2").await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(5) {
        if slow.write_all(b"X").await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 64];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(100), slow.read(&mut buf)).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "a slowloris connection stayed open");
    assert!(started.elapsed() < Duration::from_secs(3));

    // Kept alive after a request, then silent: closed.
    let mut kept = connect_from(&server, "127.0.0.2").await.unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(
        closed_within(&mut kept, Duration::from_secs(5))
            .await
            .is_some()
    );

    // A request in flight far longer than the idle timeout is answered…
    let session = server.exec("sleep 1.5; echo late; sleep 30").await;
    let (status, body) = server
        .post(
            &format!("/sessions/{}/wait", session.about.id),
            json!({"match": "late", "timeout_ms": 10000}),
        )
        .await;
    assert_eq!(
        (status, body["condition"].as_str()),
        (StatusCode::OK, Some("match"))
    );
    // …and an event stream outlives it too.
    let mut events = server
        .http
        .get(server.url(&format!("/sessions/{}/events", session.about.id)))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    server
        .post(
            &format!("/sessions/{}/resize", session.about.id),
            json!({"cols": 90, "rows": 20}),
        )
        .await;
    let mut seen = String::new();
    while !seen.contains("event: resize") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), events.chunk())
            .await
            .expect("no resize event")
            .unwrap()
            .expect("the stream was closed");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}
