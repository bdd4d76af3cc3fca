//! The network API: REST routes, the WebSocket endpoint, authentication, and the connection
//! layer under them.
//!
//! It drives the engine only through its public API (`Engine`, `Session`, `Viewer`).

pub mod auth;
pub mod connections;
pub mod convert;
pub mod error;
pub mod events;
pub mod list;
pub mod mcp;
pub mod notify;
pub mod orchestrate;
pub mod params;
pub mod recording;
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
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
    /// How often WebSocket peers are pinged; one silent for two intervals is dropped.
    pub ws_ping_interval: std::time::Duration,
    /// Cancelled when the server shuts down; open WebSockets then close with 1001.
    pub shutdown: CancellationToken,
}

/// Every route, each with its OpenAPI description: the router and `/openapi.json` are built from
/// this one list, so the document covers every route.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(web::index))
        .routes(routes!(web::asset))
        .routes(routes!(rest::health))
        .routes(routes!(openapi_json))
        .routes(routes!(rest::presets))
        .routes(routes!(list::list_sessions, rest::create_session))
        .routes(routes!(rest::get_session, rest::delete_session))
        .routes(routes!(rest::send_input))
        .routes(routes!(rest::resize))
        .routes(routes!(rest::transcript))
        .routes(routes!(recording::recording))
        .routes(routes!(orchestrate::screen))
        .routes(routes!(orchestrate::wait))
        .routes(routes!(ws::upgrade))
        .routes(routes!(events::of_session))
        .routes(routes!(events::all))
}

/// The OpenAPI 3.1 document of the API.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", tag = "server", responses((status = 200, description = "This document (OpenAPI 3.1)"), (status = 401, description = "Unauthorized (missing or wrong token)", body = crate::protocol::ErrorBody)))]
async fn openapi_json() -> Response {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let json = DOCUMENT.get_or_init(|| openapi_document().to_json().unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], json.as_str()).into_response()
}

/// The document's frame: title, version, and bearer authentication on every route but those that
/// say `security(())`.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "monkeyproof", description = "Real terminal sessions as a network service."),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
    }
}

/// All routes, behind the token check (but the public ones) and the security headers.
pub fn router(state: AppState) -> Router {
    let (router, _) = routes().split_for_parts();
    let router = router.nest_service("/mcp", mcp::service(state.clone()));
    layered(router, state)
}

/// `routes` behind everything every route gets: the fallbacks, body limits, the guard, the
/// panic catcher and the security headers.
pub fn layered(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(refuse_oversized_bodies))
        .layer(middleware::from_fn_with_state(
            state.auth.clone(),
            auth::guard,
        ))
        // A handler (or the guard) that panics still answers: a JSON 500, with the headers below.
        .layer(CatchPanicLayer::custom(error::panicked))
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
