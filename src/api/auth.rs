//! Authentication (bearer token, compared in constant time) and the WebSocket Origin check.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::protocol::TOKEN_SUBPROTOCOL_PREFIX;

/// The server's secret and who may open WebSockets.
pub struct Auth {
    token: String,
    /// Origins allowed besides the server's own, e.g. `https://ops.example.com`.
    allowed_origins: Vec<String>,
}

impl Auth {
    pub fn new(token: String, allowed_origins: Vec<String>) -> Self {
        let allowed_origins = allowed_origins
            .into_iter()
            .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
            .filter(|o| !o.is_empty())
            .collect();
        Self {
            token,
            allowed_origins,
        }
    }

    fn matches(&self, candidate: &str) -> bool {
        bool::from(candidate.as_bytes().ct_eq(self.token.as_bytes()))
    }

    /// Whether the request carries the token: as `Authorization: Bearer`, or, on WebSocket
    /// upgrades only (browsers cannot set headers there), as `?token=` or a
    /// `monkeyproof.token.<TOKEN>` subprotocol entry.
    pub fn accepts(&self, req: &Request) -> bool {
        let headers = req.headers();
        if let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            && let Some(token) = value.strip_prefix("Bearer ")
        {
            return self.matches(token.trim());
        }
        if !is_websocket_upgrade(headers) {
            return false;
        }
        let from_query = req.uri().query().into_iter().flat_map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .filter(|(key, _)| key == "token")
                .map(|(_, value)| value.into_owned())
        });
        let from_protocols = offered_subprotocols(headers)
            .into_iter()
            .filter_map(|p| p.strip_prefix(TOKEN_SUBPROTOCOL_PREFIX).map(str::to_owned));
        let mut ok = false;
        for candidate in from_query.chain(from_protocols) {
            ok |= self.matches(&candidate);
        }
        ok
    }

    /// Whether a WebSocket upgrade may proceed: no `Origin` (not a browser), the server's own
    /// origin (same host as the `Host` header), or an allowed one.
    pub fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        let own = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_ascii_lowercase)
            .is_some_and(|host| {
                origin == format!("http://{host}") || origin == format!("https://{host}")
            });
        own || self.allowed_origins.contains(&origin)
    }
}

/// Whether a request is served without a token: the health check and the browser page (which
/// holds no secrets and asks for the token itself).
fn is_public(req: &Request) -> bool {
    match req.uri().path() {
        "/health" => true,
        "/" => super::web::wants_html(req.headers()),
        path => path.starts_with("/assets/"),
    }
}

/// Middleware: 401 for every route but the public ones unless the token is present.
pub async fn require_token(State(auth): State<Arc<Auth>>, req: Request, next: Next) -> Response {
    if is_public(&req) || auth.accepts(&req) {
        next.run(req).await
    } else {
        ApiError::unauthorized().into_response()
    }
}

/// Whether the request asks to become a WebSocket.
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The entries of `Sec-WebSocket-Protocol`.
pub fn offered_subprotocols(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}
