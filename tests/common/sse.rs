//! A Server-Sent Events reader for the tests of `/events` and what publishes to it.

use std::time::Duration;

use futures_util::StreamExt;
use monkeyproof::protocol::SessionEvent;
use reqwest::StatusCode;

use super::Server;

/// A Server-Sent Events reader over a streaming response.
pub struct Sse {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl Sse {
    pub async fn open(server: &Server, path: &str, last_event_id: Option<u64>) -> Sse {
        let mut req = server.http.get(server.url(path));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Sse {
            body: Box::pin(res.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped); checks the SSE id and name match the data.
    pub async fn next(&mut self) -> SessionEvent {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim_start().to_owned())
                };
                let Some(data) = field("data:") else { continue };
                let event: SessionEvent = serde_json::from_str(&data).unwrap();
                assert_eq!(field("id:").unwrap(), event.id.to_string());
                let kind = serde_json::to_value(&event.kind).unwrap()["type"].clone();
                assert_eq!(field("event:").unwrap(), kind.as_str().unwrap());
                return event;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .expect("no event within 10 s")
                .expect("stream ended")
                .unwrap();
            self.buffer
                .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        }
    }

    /// Events until one of `session` has type `kind` (that one included).
    pub async fn until(&mut self, session: &str, kind: &str) -> Vec<SessionEvent> {
        let mut events = Vec::new();
        loop {
            let event = self.next().await;
            let done = event.session == session && type_of(&event) == kind;
            events.push(event);
            if done {
                return events;
            }
        }
    }
}

pub fn type_of(event: &SessionEvent) -> String {
    serde_json::to_value(&event.kind).unwrap()["type"]
        .as_str()
        .unwrap()
        .to_owned()
}
