//! The keeper process (`monkeyproof keeper DATA_DIR`, started by the server): it starts each
//! session's program on a new PTY, so it is the programs' parent, and holds their PTY masters,
//! so no stop, crash or upgrade of the server closes a PTY or loses an exit status or a byte of
//! output. It reads each watched PTY into the session's transcript and sends the bytes on (see
//! `held.rs`), parsing nothing; it hands each master to the server too (for input and resizes),
//! reports each leader's end (leaving it unreaped, so its pid, group and session id cannot be
//! reused while the server still signals them) and reaps it when the server says so.
//!
//! One thread, one `poll`: the listening socket, at most one server connection (the process
//! holding the data directory's server lock: a new one replaces the old, which is dead),
//! SIGCHLD as a signalfd, and an epoll set of the watched PTYs — left out while the server has
//! not taken what was sent, so a slow server slows the programs and nothing piles up here.
//! It exits when it holds no session and no server is connected.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, UnixAddr, accept4, bind, getsockopt, listen,
    socket, sockopt,
};

use super::connection::Connection;
use super::held::Sessions;
use super::wire::{self, Reply, Request};

/// How long a keeper that holds nothing waits for its first server.
const FIRST_SERVER_WAIT: Duration = Duration::from_secs(10);

/// The keeper's lock file, below the data directory: one keeper per data directory.
pub const LOCK_FILE: &str = "keeper.lock";

/// Runs the keeper for `data_dir` until it holds nothing and no server is connected.
pub fn run(data_dir: &Path) -> Result<(), String> {
    let Some(_lock) = take_lock(data_dir)? else {
        // Another keeper serves this data directory.
        return Ok(());
    };
    let listener = listen_at(&data_dir.join(wire::SOCKET))?;
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block()
        .map_err(|e| format!("cannot block SIGCHLD: {e}"))?;
    let mut sigchld = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| format!("cannot watch children: {e}"))?;
    let mut sessions = Sessions::new().map_err(|e| format!("cannot create an epoll set: {e}"))?;

    let started = Instant::now();
    let mut ever_connected = false;
    let mut server: Option<Connection> = None;
    loop {
        if sessions.is_empty()
            && server.is_none()
            && (ever_connected || started.elapsed() > FIRST_SERVER_WAIT)
        {
            return Ok(());
        }
        let ready = {
            let mut fds = vec![
                PollFd::new(listener.as_fd(), PollFlags::POLLIN),
                PollFd::new(sigchld.as_fd(), PollFlags::POLLIN),
            ];
            let reading = server.as_ref().is_some_and(Connection::is_idle);
            if let Some(server) = &server {
                let mut flags = PollFlags::POLLIN;
                if !server.is_idle() {
                    flags |= PollFlags::POLLOUT;
                }
                fds.push(PollFd::new(server.socket(), flags));
                if reading {
                    fds.push(PollFd::new(sessions.readiness(), PollFlags::POLLIN));
                }
            }
            // Parked PTYs are put back as soon as the server has caught up: look again soon.
            let timeout = if sessions.has_parked() { 1u16 } else { 1000 };
            match poll(&mut fds, PollTimeout::from(timeout)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(err) => return Err(format!("poll failed: {err}")),
            }
            let ready = |i: usize| {
                fds.get(i)
                    .and_then(|fd| fd.revents())
                    .is_some_and(|r| !r.is_empty())
            };
            Ready {
                listener: ready(0),
                sigchld: ready(1),
                server: ready(2),
                output: ready(3),
            }
        };
        if ready.sigchld {
            while let Ok(Some(_)) = sigchld.read_signal() {}
            sessions.notice_exits(server.as_mut());
            sessions.reap_ended();
        }
        if ready.listener
            && let Some(socket) = accept_server(&listener, data_dir)
        {
            // The old server is dead (only the lock's holder gets here).
            sessions.unwatch_all();
            server = Some(Connection::new(socket));
            ever_connected = true;
        }
        if let Some(conn) = server.as_mut() {
            if ready.server {
                conn.flush();
                if let Some(request) = receive(conn) {
                    serve(request, conn, &mut sessions);
                }
            }
            sessions.unpark_if_drained(conn);
            if ready.output && conn.is_idle() {
                sessions.read_ready(conn);
            }
            if conn.is_broken() {
                sessions.unwatch_all();
                server = None;
            }
        }
    }
}

/// What `poll` found ready.
struct Ready {
    listener: bool,
    sigchld: bool,
    server: bool,
    output: bool,
}

/// The server's next request, if one is there; a server that has gone or spoke nonsense is
/// marked broken.
fn receive(conn: &mut Connection) -> Option<(Request, Vec<OwnedFd>)> {
    let mut readable = [PollFd::new(conn.socket(), PollFlags::POLLIN)];
    if !matches!(poll(&mut readable, PollTimeout::ZERO), Ok(1)) {
        return None;
    }
    match wire::receive::<Request>(conn.socket().as_raw_fd()) {
        Ok(Some(request)) => Some(request),
        Ok(None) | Err(_) => {
            conn.mark_broken();
            None
        }
    }
}

/// Answers one request.
fn serve((request, fds): (Request, Vec<OwnedFd>), conn: &mut Connection, sessions: &mut Sessions) {
    match request {
        Request::Hello { version } => {
            let hello = Reply::Hello {
                version: wire::VERSION,
                pid: std::process::id(),
                takes_typed: true,
            };
            conn.message(&hello, &[]);
            if version != wire::VERSION {
                conn.mark_broken();
            }
        }
        Request::Spawn(spawn) => sessions.spawn(conn, spawn),
        Request::List => sessions.list(conn),
        Request::Watch { id } => sessions.watch(conn, &id),
        Request::Unwatch { id } => sessions.unwatch(conn, &id),
        Request::Reap { id } => sessions.reap(&id),
        Request::Typed { id } => sessions.typed(&id),
        Request::Adopt {
            id,
            pid,
            transcript,
            offset,
        } => match fds.into_iter().next() {
            Some(master) => sessions.adopt(id, pid, master, transcript, offset),
            None => tracing::error!("asked to adopt a session without its PTY"),
        },
    }
}

/// Accepts a connection from the server of `data_dir` only: a process of this user whose pid is
/// the one the data directory's server lock names (see `store::lock`). Anything else that
/// connects (a stray script, a tool) is closed at once, so it can never displace the server.
fn accept_server(listener: &OwnedFd, data_dir: &Path) -> Option<OwnedFd> {
    let fd = accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC).ok()?;
    // SAFETY: a fresh descriptor from accept4, owned here alone.
    let conn = unsafe { OwnedFd::from_raw_fd(fd) };
    let peer = getsockopt(&conn, sockopt::PeerCredentials).ok()?;
    let holder = std::fs::read_to_string(data_dir.join(crate::store::lock::LOCK_FILE)).ok()?;
    let is_server = peer.uid() == nix::unistd::geteuid().as_raw()
        && holder.trim().parse::<i32>().ok() == Some(peer.pid());
    is_server.then_some(conn)
}

/// Listens on `path` (mode 0600), replacing a socket a dead keeper left behind.
fn listen_at(path: &Path) -> Result<OwnedFd, String> {
    let cannot = |e: &dyn std::fmt::Display| format!("cannot listen on {}: {e}", path.display());
    if std::fs::symlink_metadata(path).is_ok() {
        std::fs::remove_file(path).map_err(|e| cannot(&e))?;
    }
    let addr = UnixAddr::new(path.as_os_str().as_bytes()).map_err(|e| cannot(&e))?;
    let listener = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| cannot(&e))?;
    bind(listener.as_raw_fd(), &addr).map_err(|e| cannot(&e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| cannot(&e))?;
    listen(&listener, Backlog::new(8).map_err(|e| cannot(&e))?).map_err(|e| cannot(&e))?;
    Ok(listener)
}

/// The keeper's lock, or `None` when another keeper holds it.
fn take_lock(data_dir: &Path) -> Result<Option<std::fs::File>, String> {
    let path = data_dir.join(LOCK_FILE);
    let locked = crate::store::lock::try_lock(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    Ok(locked.ok())
}
