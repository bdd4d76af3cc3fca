//! `GET /sessions/:id/ws`: the raw protocol (subprotocol `monkeyproof.tty.v1`: binary terminal
//! bytes plus JSON control messages) and the compat protocol of the original monkeyproof (JSON
//! text frames only).
//!
//! Each connection is one task around one `Viewer`. Sends are bounded in time, so a dead peer is
//! dropped; a slow one only falls behind in the shared ring and is resynced.

use std::time::{Duration, Instant};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;

use super::AppState;
use super::auth::offered_subprotocols;
use super::convert;
use super::error::ApiError;
use super::params::{SINCE_ERROR, optional_number, term_size};
use crate::engine::{
    AttachFrom, Engine, EventKind, ReplyFilter, Session, SessionStatus, Viewer, ViewerEvent,
};
use crate::protocol::{
    CompatClientMessage, CompatServerMessage, ErrorBody, FLOW_WINDOW, RAW_SUBPROTOCOL,
    RawClientMessage, RawServerMessage, SessionInfo, WsQuery,
};

/// Largest message or frame accepted from a client.
pub const MAX_WS_MESSAGE: usize = 1024 * 1024;
/// How much tungstenite reads from a client at a time. It zero-fills this much before every read
/// attempt, ready or not (tungstenite 0.29), so the 128 KB default cost a 128 KB memset per
/// loop of every connection; clients send keystrokes and small control messages.
const WS_READ_BUFFER: usize = 8 * 1024;
/// The longest one send may take before the peer is considered dead.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Which of the two protocols a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Raw,
    Compat,
}

#[utoipa::path(get, path = "/sessions/{id}/ws", tag = "sessions", params(("id" = String, Path, description = "Session id"), WsQuery), responses((status = 101, description = "WebSocket: raw protocol with subprotocol monkeyproof.tty.v1 (RawServerMessage / RawClientMessage), else the compat protocol (CompatServerMessage / CompatClientMessage)"), (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Unauthorized (missing or wrong token)", body = ErrorBody), (status = 403, description = "Origin not allowed", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn upgrade(
    State(app): State<AppState>,
    UrlPath(id): UrlPath<String>,
    Query(query): Query<WsQuery>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if !app.auth.origin_allowed(&headers) {
        tracing::warn!(session = %id, origin = ?headers.get("origin"), "WebSocket origin refused");
        return ApiError::new(StatusCode::FORBIDDEN, "Origin not allowed").into_response();
    }
    let session = match app.session(&id) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            return ApiError::new(rejection.status(), rejection.body_text()).into_response();
        }
    };
    let flavor = if offered_subprotocols(&headers).contains(&RAW_SUBPROTOCOL) {
        Flavor::Raw
    } else {
        Flavor::Compat
    };
    // Only the raw protocol resumes; compat clients never sent `since`.
    let since = match flavor {
        Flavor::Raw => match optional_number::<u64>(query.since.as_deref(), SINCE_ERROR) {
            Ok(since) => since,
            Err(e) => return e.into_response(),
        },
        Flavor::Compat => None,
    };
    let from = match (flavor, since) {
        (Flavor::Compat, _) => AttachFrom::RecentOutput,
        (Flavor::Raw, None) => AttachFrom::Screen,
        (Flavor::Raw, Some(offset)) => AttachFrom::Offset(offset),
    };

    let flow_from_start =
        flavor == Flavor::Raw && matches!(query.flow.as_deref(), Some("1" | "true"));
    let shutdown = app.shutdown.clone();
    let ping_interval = app.ws_ping_interval;
    let app = app.clone();
    ws.protocols([RAW_SUBPROTOCOL])
        .read_buffer_size(WS_READ_BUFFER)
        .max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        .on_upgrade(move |socket| async move {
            let (viewer, start) = session.attach(from).await;
            let info = app.info(&session);
            let mut conn = Connection::new(socket, viewer, flavor, ping_interval);
            let result = tokio::select! {
                r = conn.run(&app.engine, start, info, flow_from_start) => r,
                _ = shutdown.cancelled() => conn.close(close_code::AWAY, "server shutting down").await,
            };
            if let Err(err) = result {
                tracing::debug!(session = %id, %err, "WebSocket ended");
            }
        })
}

/// Why a connection ended early.
type ConnResult = Result<(), String>;

/// One WebSocket connection attached to one session.
struct Connection {
    sink: SplitSink<WebSocket, Message>,
    stream: SplitStream<WebSocket>,
    viewer: Viewer,
    flavor: Flavor,
    /// Compat only: turns output bytes into text without splitting characters.
    decoder: encoding_rs::Decoder,
    /// How often to ping; a peer silent for two intervals is dropped.
    ping_interval: Duration,
    /// Raw only: the output offset the client acknowledged, once it uses flow control.
    acked: Option<u64>,
    /// Which of the server's answers this viewer's duplicates were matched against.
    replies: ReplyFilter,
    /// Acks below this offset (where the stream started or was last resynced) are stale.
    ack_floor: u64,
}

impl Connection {
    fn new(socket: WebSocket, viewer: Viewer, flavor: Flavor, ping_interval: Duration) -> Self {
        let (sink, stream) = socket.split();
        Self {
            sink,
            stream,
            viewer,
            flavor,
            decoder: encoding_rs::UTF_8.new_decoder_without_bom_handling(),
            ping_interval,
            acked: None,
            ack_floor: 0,
            replies: ReplyFilter::default(),
        }
    }

    /// Whether a flow-controlled client has a full window of unacknowledged output.
    fn window_full(&self) -> bool {
        self.acked
            .is_some_and(|acked| self.viewer.offset().saturating_sub(acked) >= FLOW_WINDOW)
    }

    async fn run(
        &mut self,
        engine: &Engine,
        start: crate::engine::AttachStart,
        info: SessionInfo,
        flow_from_start: bool,
    ) -> ConnResult {
        self.ack_floor = start.offset;
        if flow_from_start {
            self.acked = Some(start.offset);
        }
        let session = self.viewer.session().clone();
        match self.flavor {
            Flavor::Raw => {
                self.send_json(&RawServerMessage::Hello {
                    session: Box::new(info),
                    offset: start.offset,
                    snapshot: start.redraw.is_some() && start.missed.is_none(),
                })
                .await?;
                if let Some(redraw) = start.redraw {
                    if let Some(missed) = start.missed {
                        self.send_json(&RawServerMessage::Resync {
                            missed,
                            offset: start.offset,
                        })
                        .await?;
                    }
                    self.send(Message::Binary(redraw.into())).await?;
                }
            }
            Flavor::Compat => {
                let snap = session.snapshot();
                let data = self.decode(crate::engine::skip_partial_char(&start.recent));
                self.send_json(&CompatServerMessage::Catchup {
                    id: session.id.clone(),
                    task: session.task.clone(),
                    status: snap.status,
                    exit_code: snap.exit.and_then(|e| e.code),
                    data,
                })
                .await?;
            }
        }

        let mut events = engine.events.subscribe();
        let mut last_event = engine.events.latest_id();
        let mut ping = tokio::time::interval_at(
            tokio::time::Instant::now() + self.ping_interval,
            self.ping_interval,
        );
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                event = self.viewer.next(), if !self.window_full() => match event {
                    Some(ViewerEvent::Exit { status, exit }) => {
                        self.send_exit(&session, status, exit).await?;
                        return self.close(close_code::NORMAL, "session ended").await;
                    }
                    Some(event) => self.send_event(event).await?,
                    None => return self.close(close_code::NORMAL, "session ended").await,
                },
                changed = events.changed(), if self.flavor == Flavor::Raw => {
                    if changed.is_ok() {
                        last_event = self.forward_events(engine, &session.id, last_event).await?;
                    }
                }
                message = self.stream.next() => {
                    last_heard = Instant::now();
                    match message {
                        Some(Ok(message)) => {
                            if !self.handle_client(&session, message).await? {
                                return Ok(());
                            }
                        }
                        Some(Err(err)) => return self.refuse(err).await,
                        None => return Ok(()),
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > 2 * self.ping_interval {
                        return Err("peer stopped answering pings".into());
                    }
                    self.send(Message::Ping(Default::default())).await?;
                }
            }
        }
    }

    /// Raw only: sends the session's activity events after `after` (busy, idle, title, bell,
    /// agent; resize and exit have messages of their own); returns the id to continue after.
    async fn forward_events(
        &mut self,
        engine: &Engine,
        session: &str,
        after: u64,
    ) -> Result<u64, String> {
        let (events, next) = match engine.events.after(after, Some(session), usize::MAX) {
            Ok(found) => found,
            Err(missed) => return Ok(missed.oldest - 1),
        };
        for event in events.iter().filter(|e| {
            matches!(
                e.kind,
                EventKind::Busy
                    | EventKind::Idle
                    | EventKind::Title(_)
                    | EventKind::Bell { .. }
                    | EventKind::Agent(_)
            )
        }) {
            let event = Box::new(convert::event(engine, event, false));
            self.send_json(&RawServerMessage::Event { event }).await?;
        }
        Ok(next)
    }

    async fn send_event(&mut self, event: ViewerEvent) -> ConnResult {
        match (self.flavor, event) {
            (Flavor::Raw, ViewerEvent::Output { bytes, .. }) => {
                self.send(Message::Binary(bytes)).await
            }
            (
                Flavor::Raw,
                ViewerEvent::Resync {
                    missed,
                    offset,
                    redraw,
                },
            ) => {
                // The client starts over at `offset`: what it had in flight no longer counts,
                // and acks of older offsets (still on their way) must not count either.
                self.ack_floor = offset;
                self.acked = self.acked.map(|_| offset);
                self.send_json(&RawServerMessage::Resync { missed, offset })
                    .await?;
                self.send(Message::Binary(redraw)).await
            }
            (Flavor::Raw, ViewerEvent::Resize(size)) => {
                self.send_json(&RawServerMessage::Resize {
                    cols: size.cols,
                    rows: size.rows,
                })
                .await
            }
            (Flavor::Compat, ViewerEvent::Output { bytes, .. }) => {
                let data = self.decode(&bytes);
                if data.is_empty() {
                    return Ok(());
                }
                self.send_json(&CompatServerMessage::Stdout { data }).await
            }
            (Flavor::Compat, ViewerEvent::Resync { missed, offset, .. }) => {
                self.decoder = encoding_rs::UTF_8.new_decoder_without_bom_handling();
                self.send_json(&CompatServerMessage::Gap {
                    skipped: offset - missed,
                })
                .await
            }
            (Flavor::Compat, ViewerEvent::Resize(_)) => Ok(()),
            (_, ViewerEvent::Exit { .. }) => Ok(()),
        }
    }

    async fn send_exit(
        &mut self,
        session: &Session,
        status: SessionStatus,
        exit: crate::engine::ExitInfo,
    ) -> ConnResult {
        match self.flavor {
            Flavor::Raw => {
                self.send_json(&RawServerMessage::Exit {
                    code: exit.code,
                    signal: exit.signal,
                    reason: exit.reason,
                    status,
                })
                .await
            }
            Flavor::Compat if status == SessionStatus::Killed => {
                self.send_json(&CompatServerMessage::Killed).await
            }
            Flavor::Compat => {
                let ended = session
                    .ended_at()
                    .unwrap_or_else(std::time::SystemTime::now);
                let duration = ended
                    .duration_since(session.created_at)
                    .unwrap_or_default()
                    .as_millis() as u64;
                self.send_json(&CompatServerMessage::Exit {
                    code: exit.code,
                    duration,
                })
                .await
            }
        }
    }

    /// Handles one client message; `Ok(false)` when the client closed.
    async fn handle_client(&mut self, session: &Session, message: Message) -> Result<bool, String> {
        let refusal = match (self.flavor, message) {
            (_, Message::Close(_)) => return Ok(false),
            (_, Message::Ping(_) | Message::Pong(_)) => return Ok(true),
            (_, Message::Binary(bytes)) => self.input(session, bytes.to_vec()),
            (Flavor::Raw, Message::Text(text)) => match serde_json::from_str(&text) {
                Ok(RawClientMessage::Resize { cols, rows }) => resize(session, cols, rows),
                Ok(RawClientMessage::Ack { offset }) => {
                    let acked = offset.max(self.ack_floor).min(self.viewer.offset());
                    self.acked = Some(self.acked.map_or(acked, |a| a.max(acked)));
                    None
                }
                Err(e) => Some(format!("invalid control message: {e}")),
            },
            (Flavor::Compat, Message::Text(text)) => match serde_json::from_str(&text) {
                Ok(CompatClientMessage::Stdin { data }) => self.input(session, data.into()),
                Ok(CompatClientMessage::Resize { cols, rows }) => resize(session, cols, rows),
                Err(e) => Some(format!("invalid message: {e}")),
            },
        };
        if let Some(error) = refusal {
            match self.flavor {
                Flavor::Raw => self.send_json(&RawServerMessage::Error { error }).await?,
                Flavor::Compat => {
                    self.send_json(&CompatServerMessage::Error { error })
                        .await?
                }
            }
        }
        Ok(true)
    }

    /// Queues a viewer's input, except its terminal's duplicate answers to queries the server
    /// answered already (see `engine::answers`). Not waited for: the viewer's output must keep
    /// flowing while the program is not reading.
    fn input(&mut self, session: &Session, bytes: Vec<u8>) -> Option<String> {
        if session.is_duplicate_answer(&mut self.replies, &bytes) {
            return None;
        }
        session
            .queue_input(bytes)
            .err()
            .map(|e| ApiError::from(e).message)
    }

    fn decode(&mut self, bytes: &[u8]) -> String {
        let mut out = String::with_capacity(
            self.decoder
                .max_utf8_buffer_length(bytes.len())
                .unwrap_or(bytes.len() * 3 + 4),
        );
        let _ = self.decoder.decode_to_string(bytes, &mut out, false);
        out
    }

    async fn send_json(&mut self, message: &impl Serialize) -> ConnResult {
        let text = serde_json::to_string(message).map_err(|e| e.to_string())?;
        self.send(Message::Text(Utf8Bytes::from(text))).await
    }

    async fn send(&mut self, message: Message) -> ConnResult {
        match tokio::time::timeout(SEND_TIMEOUT, self.sink.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err("send timed out".into()),
        }
    }

    /// Closes with the code that says what was wrong with what the client sent: 1009 for a
    /// message or frame over `MAX_WS_MESSAGE`, 1007 for text that is not UTF-8, 1002 otherwise.
    async fn refuse(&mut self, err: axum::Error) -> ConnResult {
        let message = err.to_string();
        let inner = err.into_inner();
        let (code, reason) = match inner.downcast_ref::<tungstenite::Error>() {
            Some(tungstenite::Error::Capacity(_)) => (close_code::SIZE, "message too big"),
            Some(tungstenite::Error::Utf8(_)) => (close_code::INVALID, "text is not UTF-8"),
            Some(tungstenite::Error::Protocol(_)) => (close_code::PROTOCOL, "protocol error"),
            _ => return Err(message),
        };
        let _ = self.close(code, reason).await;
        Err(message)
    }

    async fn close(&mut self, code: u16, reason: &'static str) -> ConnResult {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        self.send(Message::Close(Some(frame))).await
    }
}

/// Applies a resize from a client; `Some(message)` when refused.
fn resize(session: &Session, cols: i64, rows: i64) -> Option<String> {
    match term_size(cols, rows) {
        Ok(size) => session
            .resize(size)
            .err()
            .map(|e| ApiError::from(e).message),
        Err(e) => Some(e.message),
    }
}
