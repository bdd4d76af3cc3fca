//! Accepting TCP connections and serving HTTP on them, within the limits a listener that anyone
//! can reach needs, so that idle or half-open connections cannot make the server unreachable:
//!
//! - at most `per_client` connections open at once from one address, and at most `total` in all
//!   (what the open-files limit leaves once the sessions' descriptors are set aside); beyond
//!   either, a connection gets `503` and is closed at once;
//! - a connection with no request in flight is closed after `idle_timeout` without a byte from
//!   its client, and one that started a request after `header_timeout` if the request's head is
//!   still not complete (as Go's `IdleTimeout` / `ReadHeaderTimeout`). A request in flight (a
//!   long wait, an event stream) is never cut; WebSockets have their own pings.
//!
//! Connections count until their socket closes, upgraded ones (WebSockets) included.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Descriptors kept free beyond the sessions' share: new clients, transcripts being read, logs.
pub const DESCRIPTOR_HEADROOM: u64 = 64;
/// The fewest connections allowed in all, however small the open-files limit.
const MIN_CONNECTIONS: usize = 16;

/// How many connections, and how long they may sit silent.
#[derive(Debug, Clone)]
pub struct Limits {
    pub per_client: usize,
    pub total: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Limits {
    /// `total` from the descriptor budget: the open-files limit less what the sessions may need
    /// (`reserved`, but never more than half the limit: a `MAX_SESSIONS` the limit cannot afford
    /// anyway must not starve connections) and `DESCRIPTOR_HEADROOM`. One client may hold at most
    /// half of it, so another always gets in.
    pub fn within_descriptors(
        fd_limit: u64,
        reserved: u64,
        per_client: usize,
        header_timeout: Duration,
        idle_timeout: Duration,
    ) -> Self {
        let reserved = reserved.min(fd_limit / 2);
        let total = fd_limit
            .saturating_sub(reserved + DESCRIPTOR_HEADROOM)
            .max(MIN_CONNECTIONS as u64) as usize;
        Self {
            per_client: per_client.min(total / 2).max(1),
            total,
            header_timeout,
            idle_timeout,
        }
    }
}

/// Serves `router` on `listener` until `stop` is cancelled, then stops accepting, lets open
/// connections finish their requests, and returns once they are closed.
pub async fn serve(listener: TcpListener, router: Router, limits: Limits, stop: CancellationToken) {
    let counts = Arc::new(Counts::default());
    let limits = Arc::new(limits);
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                accept_failed(&err).await;
                continue;
            }
        };
        // Keystrokes and their echoes are tiny writes that must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let Some(slot) = counts.admit(peer.ip(), &limits) else {
            refuse(&stream, peer);
            continue;
        };
        let (router, limits, stop) = (router.clone(), limits.clone(), stop.clone());
        tracker.spawn(serve_connection(stream, peer, slot, router, limits, stop));
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

/// A failed `accept`: out of descriptors (the connection waits in the backlog; try again
/// shortly, without spinning) or a connection that went away before it was accepted.
async fn accept_failed(err: &io::Error) {
    match err.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
            tracing::warn!(%err, "cannot accept a connection: out of descriptors");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        _ => tracing::debug!(%err, "accept failed"),
    }
}

/// Answers 503 without reading the request, and closes.
fn refuse(stream: &TcpStream, peer: SocketAddr) {
    const BODY: &str = r#"{"error":"Too many connections from this address"}"#;
    tracing::warn!(client = %peer, "denied: too many connections");
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = stream.try_write(response.as_bytes());
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    router: Router,
    limits: Arc<Limits>,
    stop: CancellationToken,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
        _slot: slot,
    });
    let in_flight = activity.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let request = in_flight.request();
        let router = router.clone();
        async move {
            // In flight until its response has been sent whole (an event stream stays so).
            let response = router.oneshot(req).await?;
            Ok::<_, std::convert::Infallible>(response.map(|body| {
                Body::new(Guarded {
                    body,
                    _request: request,
                })
            }))
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // Timeouts are kept here (they also cover the idle wait between requests).
        .header_read_timeout(None)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(connection);
    let check_every = limits.header_timeout.min(limits.idle_timeout);
    let mut stopping = false;
    loop {
        let now = Instant::now();
        let wake = activity
            .deadline(&limits)
            .map_or(now + check_every, |at| at.min(now + check_every));
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(client = %peer, %err, "connection ended");
                }
                return;
            }
            _ = stop.cancelled(), if !stopping => {
                connection.as_mut().graceful_shutdown();
                stopping = true;
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                if activity.deadline(&limits).is_some_and(|at| at <= Instant::now()) {
                    tracing::debug!(client = %peer, "closing a silent connection");
                    return;
                }
            }
        }
    }
}

/// What one connection has been doing, for its timeouts.
struct Activity {
    start: Instant,
    /// Requests whose handler has not answered yet.
    in_flight: AtomicUsize,
    /// When the connection last started waiting for a request (ms since `start`).
    waiting_since: AtomicU64,
    /// When the first byte of the next request arrived (ms since `start`), or `NONE`.
    head_started: AtomicU64,
}

const NONE: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            waiting_since: AtomicU64::new(0),
            head_started: AtomicU64::new(NONE),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Bytes arrived from the client.
    fn read(&self) {
        if self.in_flight.load(Ordering::SeqCst) == 0 {
            let _ = self.head_started.compare_exchange(
                NONE,
                self.now_ms(),
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
    }

    /// A request reached its handler; it is in flight until the guard is dropped.
    fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// When the connection is to be closed if nothing changes, or `None` while a request is in
    /// flight.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let at = |ms: u64, limit: Duration| self.start + Duration::from_millis(ms) + limit;
        Some(match self.head_started.load(Ordering::SeqCst) {
            NONE => at(
                self.waiting_since.load(Ordering::SeqCst),
                limits.idle_timeout,
            ),
            started => at(started, limits.header_timeout),
        })
    }
}

struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        if activity.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            activity
                .waiting_since
                .store(activity.now_ms(), Ordering::SeqCst);
            activity.head_started.store(NONE, Ordering::SeqCst);
        }
    }
}

/// The socket, noting reads in `activity`, and holding the connection's place in the counts
/// for as long as it is open (also after an upgrade).
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
    _slot: Slot,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A response body that keeps its request in flight until it is sent whole (or dropped).
struct Guarded {
    body: Body,
    _request: InFlight,
}

impl hyper::body::Body for Guarded {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Open connections, in all and per client address.
#[derive(Default)]
struct Counts {
    inner: Mutex<CountsInner>,
}

#[derive(Default)]
struct CountsInner {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

impl Counts {
    /// A place for a connection from `ip`, unless that would pass a limit.
    fn admit(self: &Arc<Self>, ip: IpAddr, limits: &Limits) -> Option<Slot> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mine = inner.per_client.get(&ip).copied().unwrap_or(0);
        if inner.total >= limits.total || mine >= limits.per_client {
            return None;
        }
        inner.total += 1;
        inner.per_client.insert(ip, mine + 1);
        Some(Slot {
            counts: self.clone(),
            ip,
        })
    }
}

/// One connection's place in the counts, given back when dropped.
struct Slot {
    counts: Arc<Counts>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.counts.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.total -= 1;
        if let Some(n) = inner.per_client.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                inner.per_client.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(fd_limit: u64, reserved: u64) -> Limits {
        let t = Duration::from_secs(1);
        Limits::within_descriptors(fd_limit, reserved, 1000, t, t)
    }

    #[test]
    fn connections_get_what_sessions_leave_and_one_client_half_of_it() {
        let l = limits(20_000, 50 * 5);
        assert_eq!((l.total, l.per_client), (19_686, 1000));
        // More sessions allowed than descriptors can serve: connections still get half.
        let l = limits(20_000, 5000 * 5);
        assert_eq!((l.total, l.per_client), (9_936, 1000));
        let l = limits(256, 50 * 5);
        assert_eq!((l.total, l.per_client), (64, 32));
        assert_eq!(limits(64, 1000).total, MIN_CONNECTIONS);
    }
}
