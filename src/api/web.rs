//! The browser page: `index.html`, `app.js` and `app.css` (and `player.js`/`player.css`, the
//! recordings' player, loaded on demand), built from `web/` by `build.rs` and embedded in the
//! binary. Served without a token (they hold no secrets); the page asks for one.

use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use super::rest;
use crate::protocol::{Banner, ErrorBody};

const INDEX_HTML: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/web/index.html"));
const APP_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/web/app.js"));
const APP_CSS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/web/app.css"));
const PLAYER_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/web/player.js"));
const PLAYER_CSS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/web/player.css"));
const ICON_SVG: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/web/icon.svg"));

/// The page's policy: no inline or foreign scripts, no framing, connections to this server only.
/// Inline styles are allowed because xterm.js sets its theme through `<style>` elements;
/// WebAssembly compilation (not `eval`) because asciinema-player's terminal is WebAssembly.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Whether a request for `/` comes from a browser (which gets the page, not the JSON banner).
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// `GET /`: the page for browsers, the JSON banner for API clients.
#[utoipa::path(get, path = "/", tag = "server", responses((status = 200, description = "The page for browsers (Accept: text/html, no token needed), else the JSON banner", content((Banner = "application/json"), (String = "text/html"))), (status = 401, description = "Unauthorized (missing or wrong token)", body = ErrorBody)))]
pub async fn index(state: State<AppState>, headers: HeaderMap) -> Response {
    if wants_html(&headers) {
        asset_response("text/html; charset=utf-8", INDEX_HTML)
    } else {
        rest::banner(state).await.into_response()
    }
}

/// `GET /assets/:name`.
#[utoipa::path(get, path = "/assets/{name}", tag = "server", security(()), params(("name" = String, Path, description = "app.js, app.css, player.js, player.css or icon.svg")), responses((status = 200, description = "The page's bundle", body = String), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn asset(UrlPath(name): UrlPath<String>) -> Response {
    match name.as_str() {
        "app.js" => asset_response("text/javascript; charset=utf-8", APP_JS),
        "app.css" => asset_response("text/css; charset=utf-8", APP_CSS),
        "player.js" => asset_response("text/javascript; charset=utf-8", PLAYER_JS),
        "player.css" => asset_response("text/css; charset=utf-8", PLAYER_CSS),
        "icon.svg" => asset_response("image/svg+xml", ICON_SVG),
        _ => ApiError::not_found().into_response(),
    }
}

fn asset_response(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Middleware: security headers on every response.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let headers = res.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    res
}
