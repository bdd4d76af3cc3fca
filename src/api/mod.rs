//! The network API: REST routes, the WebSocket endpoint and authentication.
//!
//! It drives the engine only through its public API (`Engine`, `Session`, `Viewer`).

pub mod auth;
pub mod error;
pub mod events;
pub mod rest;
pub mod web;
pub mod ws;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::presets::Presets;
use auth::Auth;
use error::ApiError;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub presets: Arc<Presets>,
    pub auth: Arc<Auth>,
    /// Lines of plain text `recentOutput` holds at most.
    pub output_buffer_lines: usize,
    /// Output within this long makes a session `busy`.
    pub busy_window: std::time::Duration,
    /// How often WebSocket peers are pinged; one silent for two intervals is dropped.
    pub ws_ping_interval: std::time::Duration,
    /// Cancelled when the server shuts down; open WebSockets then close with 1001.
    pub shutdown: CancellationToken,
}

/// All routes, behind the token check (but `/health`).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(web::index))
        .route("/assets/{name}", get(web::asset))
        .route("/health", get(rest::health))
        .route("/presets", get(rest::presets))
        .route(
            "/sessions",
            get(rest::list_sessions).post(rest::create_session),
        )
        .route(
            "/sessions/{id}",
            get(rest::get_session).delete(rest::delete_session),
        )
        .route("/sessions/{id}/input", post(rest::send_input))
        .route("/sessions/{id}/resize", post(rest::resize))
        .route("/sessions/{id}/transcript", get(rest::transcript))
        .route("/sessions/{id}/screen", get(rest::screen))
        .route("/sessions/{id}/wait", post(rest::wait))
        .route("/sessions/{id}/ws", get(ws::upgrade))
        .route("/sessions/{id}/events", get(events::of_session))
        .route("/events", get(events::all))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(refuse_oversized_bodies))
        .layer(middleware::from_fn_with_state(
            state.auth.clone(),
            auth::require_token,
        ))
        .layer(middleware::from_fn(web::security_headers))
        .with_state(state)
}

/// Answers 413 from the `Content-Length` alone, before reading a body that is too large; bodies
/// without a length are cut off by `DefaultBodyLimit` as they are read.
async fn refuse_oversized_bodies(req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body is too large")
            .into_response();
    }
    next.run(req).await
}

/// Drops UTF-8 continuation bytes at the start: the ring may begin in the middle of a character.
pub(crate) fn skip_partial_char(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| (b & 0xC0) != 0x80)
        .unwrap_or(bytes.len());
    &bytes[start..]
}
