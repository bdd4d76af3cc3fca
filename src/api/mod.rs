//! The network API: REST routes, the WebSocket endpoint and authentication.
//!
//! It drives the engine only through its public API (`Engine`, `Session`, `Viewer`).

pub mod auth;
pub mod error;
pub mod rest;
pub mod ws;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
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
    /// Cancelled when the server shuts down; open WebSockets then close with 1001.
    pub shutdown: CancellationToken,
}

/// All routes, behind the token check (but `/health`).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(rest::banner))
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
        .route("/sessions/{id}/ws", get(ws::upgrade))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            state.auth.clone(),
            auth::require_token,
        ))
        .with_state(state)
}

/// Drops UTF-8 continuation bytes at the start: the ring may begin in the middle of a character.
pub(crate) fn skip_partial_char(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| (b & 0xC0) != 0x80)
        .unwrap_or(bytes.len());
    &bytes[start..]
}
