//! `GET /events` and `GET /sessions/:id/events`: the engine's event feed as Server-Sent Events,
//! resumable with `Last-Event-ID`. An id the feed no longer has — too old, or above the newest
//! (from an earlier run of the server) — gets a `reset` first, then every event still kept.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use futures_util::stream::{self, StreamExt};

use super::AppState;
use super::convert::{self, iso_time};
use super::error::ApiError;
use crate::engine::Engine;
use crate::protocol::{ErrorBody, EventsQuery, SessionEvent, SessionEventKind};

/// Events sent in one go before looking again.
const BATCH: usize = 256;

#[utoipa::path(get, path = "/events", tag = "events", params(EventsQuery, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")), responses((status = 200, description = "Server-Sent Events of every session", content_type = "text/event-stream", body = SessionEvent), (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Unauthorized (missing or wrong token)", body = ErrorBody)))]
pub async fn all(
    State(app): State<AppState>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Response {
    feed(app, None, query, &headers)
}

#[utoipa::path(get, path = "/sessions/{id}/events", tag = "events", params(("id" = String, Path, description = "Session id"), EventsQuery, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")), responses((status = 200, description = "Server-Sent Events of this session", content_type = "text/event-stream", body = SessionEvent), (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Unauthorized (missing or wrong token)", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn of_session(
    State(app): State<AppState>,
    UrlPath(id): UrlPath<String>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Response {
    match app.session(&id) {
        Ok(_) => feed(app, Some(id), query, &headers),
        Err(e) => e.into_response(),
    }
}

fn feed(
    app: AppState,
    session: Option<String>,
    query: EventsQuery,
    headers: &HeaderMap,
) -> Response {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(query.last_event_id);
    let after = match resume.as_deref() {
        None | Some("") => app.engine.events.latest_id(),
        Some(id) => match id.parse::<u64>() {
            Ok(id) => id,
            Err(_) => {
                return ApiError::bad_request("Last-Event-ID must be an event id").into_response();
            }
        },
    };
    let with_data = matches!(query.data.as_deref(), Some("1" | "true"));
    let types = match wanted_types(query.types.as_deref()) {
        Ok(types) => types,
        Err(err) => return err.into_response(),
    };
    let stream = events_after(app.engine.clone(), session, after, with_data)
        .filter(move |(name, _)| {
            std::future::ready(name == "reset" || types.as_ref().is_none_or(|t| t.contains(name)))
        })
        .map(|(_, event)| Ok::<_, Infallible>(event))
        .take_until(app.shutdown.clone().cancelled_owned());
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The `types` asked for (None: all), or 400 naming an unknown one.
fn wanted_types(types: Option<&str>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(types) = types.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let names: Vec<String> = types.split(',').map(|t| t.trim().to_owned()).collect();
    match names
        .iter()
        .find(|n| !SessionEventKind::TYPES.contains(&n.as_str()))
    {
        Some(unknown) => Err(ApiError::bad_request(format!(
            "unknown event type {unknown:?}; types are {}",
            SessionEventKind::TYPES.join(", ")
        ))),
        None => Ok(Some(names)),
    }
}

/// The events after `after`, then live ones as they come, each with its type's name.
fn events_after(
    engine: Arc<Engine>,
    session: Option<String>,
    after: u64,
    with_data: bool,
) -> impl Stream<Item = (String, SseEvent)> {
    let changes = engine.events.subscribe();
    stream::unfold(
        (engine, changes, after),
        move |(engine, mut changes, mut after)| {
            let session = session.clone();
            async move {
                loop {
                    changes.borrow_and_update();
                    let (batch, scanned_to) =
                        match engine.events.after(after, session.as_deref(), BATCH) {
                            Ok(found) => found,
                            Err(missed) => {
                                after = missed.oldest - 1;
                                let reset = SessionEvent {
                                    id: after,
                                    session: session.clone().unwrap_or_default(),
                                    at: iso_time(std::time::SystemTime::now()),
                                    kind: SessionEventKind::Reset {
                                        oldest: missed.oldest,
                                    },
                                };
                                return Some((vec![to_sse(&reset)], (engine, changes, after)));
                            }
                        };
                    if !batch.is_empty() {
                        let items = batch
                            .iter()
                            .map(|e| to_sse(&convert::event(&engine, e, with_data)))
                            .collect();
                        return Some((items, (engine, changes, scanned_to)));
                    }
                    after = scanned_to;
                    if changes.changed().await.is_err() {
                        return None;
                    }
                }
            }
        },
    )
    .flat_map(stream::iter)
}

fn to_sse(event: &SessionEvent) -> (String, SseEvent) {
    let name = event.kind.type_name();
    let sse = SseEvent::default()
        .id(event.id.to_string())
        .event(&name)
        .data(serde_json::to_string(event).unwrap_or_default());
    (name, sse)
}
