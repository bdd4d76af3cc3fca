//! Who may talk to the server: the `Host` allow-list (DNS rebinding), the bearer token (compared
//! in constant time), the lock-out of addresses that keep failing it, and the WebSocket `Origin`
//! check.
//!
//! Only a wrong token counts towards the lock-out, and only from a client that could have read
//! the answer: requests without any credentials, and requests a browser sends on behalf of a
//! page of another origin, never do. Otherwise any web page could lock every local client out
//! (they all come from 127.0.0.1).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::protocol::TOKEN_SUBPROTOCOL_PREFIX;

/// Failed authentications from one address within `FAILURE_WINDOW` that lock it out.
pub const MAX_AUTH_FAILURES: u32 = 20;
/// The window in which failures are counted.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long a locked-out address gets 429 for everything.
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// Addresses tracked at most; beyond it, stale entries are dropped, then unlocked ones.
pub const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// The server's secret, who may open WebSockets, and which `Host` names are ours.
pub struct Auth {
    token: String,
    /// Origins allowed besides the server's own, e.g. `https://ops.example.com`.
    allowed_origins: Vec<String>,
    /// Host names (without port) requests may name; `None` accepts any (non-loopback binds).
    allowed_hosts: Option<Vec<String>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

/// Recent authentication failures of one address.
#[derive(Debug, Clone, Copy)]
struct Failures {
    window_start: Instant,
    count: u32,
    locked_until: Option<Instant>,
}

impl Auth {
    pub fn new(
        token: String,
        allowed_origins: Vec<String>,
        allowed_hosts: Option<Vec<String>>,
    ) -> Self {
        let normalize = |v: Vec<String>, trim: &[char]| -> Vec<String> {
            v.into_iter()
                .map(|o| o.trim().trim_end_matches(trim).to_ascii_lowercase())
                .filter(|o| !o.is_empty())
                .collect()
        };
        Self {
            token,
            allowed_origins: normalize(allowed_origins, &['/']),
            allowed_hosts: allowed_hosts.map(|h| normalize(h, &['.'])),
            failures: Mutex::default(),
        }
    }

    /// Whether the `Host` header names this server (always true without an allow-list).
    pub fn host_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(allowed) = &self.allowed_hosts else {
            return true;
        };
        let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        // Strip the port; IPv6 literals keep their brackets.
        let name = match host.rfind(':') {
            Some(i) if !host[i..].contains(']') => &host[..i],
            _ => host.as_str(),
        };
        allowed.iter().any(|a| a == name)
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long `ip` is still locked out, if it is.
    fn locked_for(&self, ip: IpAddr) -> Option<Duration> {
        let left = self
            .failures()
            .get(&ip)?
            .locked_until?
            .checked_duration_since(Instant::now())?;
        (!left.is_zero()).then_some(left)
    }

    /// Counts a failure of `ip`; returns the lock-out it now has, if any.
    pub fn record_failure(&self, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let mut failures = self.failures();
        if !failures.contains_key(&ip) && failures.len() >= MAX_TRACKED_ADDRESSES {
            failures.retain(|_, f| {
                now.duration_since(f.window_start) < FAILURE_WINDOW
                    || f.locked_until.is_some_and(|t| t > now)
            });
            if failures.len() >= MAX_TRACKED_ADDRESSES {
                // Still full of recent ones: forget one that is not locked out, or else do not
                // track this address (an attacker with that many addresses is not slowed by a
                // per-address lock-out anyway).
                let unlocked = failures
                    .iter()
                    .find(|(_, f)| f.locked_until.is_none_or(|t| t <= now))
                    .map(|(ip, _)| *ip);
                match unlocked {
                    Some(forget) => {
                        failures.remove(&forget);
                    }
                    None => return None,
                }
            }
        }
        let entry = failures.entry(ip).or_insert(Failures {
            window_start: now,
            count: 0,
            locked_until: None,
        });
        if now.duration_since(entry.window_start) >= FAILURE_WINDOW {
            *entry = Failures {
                window_start: now,
                count: 0,
                locked_until: None,
            };
        }
        entry.count += 1;
        if entry.count >= MAX_AUTH_FAILURES {
            entry.locked_until = Some(now + LOCKOUT);
            return Some(LOCKOUT);
        }
        None
    }

    /// How many addresses the lock-out tracks now.
    pub fn tracked_addresses(&self) -> usize {
        self.failures().len()
    }

    fn matches(&self, candidate: &str) -> bool {
        bool::from(candidate.as_bytes().ct_eq(self.token.as_bytes()))
    }

    /// Whether the request carries the token: as `Authorization: Bearer`, or, on WebSocket
    /// upgrades only (browsers cannot set headers there), as `?token=` or a
    /// `monkeyproof.token.<TOKEN>` subprotocol entry.
    pub fn accepts(&self, req: &Request) -> bool {
        let mut ok = false;
        for candidate in credentials(req) {
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

/// The tokens a request offers: an `Authorization` header with the `Bearer` scheme (any case,
/// RFC 7235), or, on WebSocket upgrades only (browsers cannot set headers there), `?token=` and
/// `monkeyproof.token.<TOKEN>` subprotocol entries.
fn credentials(req: &Request) -> Vec<String> {
    let headers = req.headers();
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = value.trim().split_once(' ').unwrap_or((value, ""));
        return if scheme.eq_ignore_ascii_case("bearer") {
            vec![token.trim().to_owned()]
        } else {
            // Another scheme (Basic…) is a credential too, a wrong one.
            vec![String::new()]
        };
    }
    if !is_websocket_upgrade(headers) {
        return Vec::new();
    }
    let from_query = req.uri().query().into_iter().flat_map(|q| {
        form_urlencoded::parse(q.as_bytes())
            .filter(|(key, _)| key == "token")
            .map(|(_, value)| value.into_owned())
    });
    let from_protocols = offered_subprotocols(headers)
        .into_iter()
        .filter_map(|p| p.strip_prefix(TOKEN_SUBPROTOCOL_PREFIX).map(str::to_owned));
    from_query.chain(from_protocols).collect()
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

/// Middleware, first in line: 403 for a foreign `Host`, 429 for a locked-out address, 401 for
/// every route but the public ones unless the token is present. Denials are logged; only wrong
/// tokens from a client that is not a foreign page count towards the lock-out.
pub async fn guard(
    State(auth): State<Arc<Auth>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    if !auth.host_allowed(req.headers()) {
        tracing::warn!(client = %peer, %path, host = ?req.headers().get(header::HOST), "denied: Host not allowed");
        return ApiError::new(StatusCode::FORBIDDEN, "Host not allowed").into_response();
    }
    if let Some(left) = auth.locked_for(peer.ip()) {
        tracing::warn!(client = %peer, %path, "denied: locked out after repeated authentication failures");
        return too_many_failures(left);
    }
    if is_public(&req) || auth.accepts(&req) {
        return next.run(req).await;
    }
    tracing::warn!(client = %peer, %path, method = %req.method(), "denied: missing or wrong token");
    let guessed = !credentials(&req).is_empty() && auth.origin_allowed(req.headers());
    match guessed.then(|| auth.record_failure(peer.ip())).flatten() {
        Some(lockout) => too_many_failures(lockout),
        None => ApiError::unauthorized().into_response(),
    }
}

fn too_many_failures(left: Duration) -> Response {
    let mut res = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many failed authentications from this address; try again later",
    )
    .into_response();
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    res
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
