//! The keeper process (`monkeyproof keeper DATA_DIR`, started by the server): it starts each
//! session's program on a new PTY, so it is the programs' parent, and holds their PTY masters,
//! so no stop, crash or upgrade of the server closes a PTY or loses an exit status. It never
//! reads or writes a PTY and parses nothing; it hands each master to the server over the socket,
//! reports each leader's end (leaving it unreaped, so its pid, group and session id cannot be
//! reused while the server still signals them) and reaps it when the server says so.
//!
//! One thread, one `poll`: the listening socket, at most one server connection (the process
//! holding the data directory's server lock: a new one replaces the old, which is dead), and
//! SIGCHLD as a signalfd.
//! It exits when it holds no session and no server is connected.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::{Winsize, openpty};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, UnixAddr, accept4, bind, getsockopt, listen,
    socket, sockopt,
};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;

use super::child::{self, Program};
use super::wire::{self, Exit, Reply, Request};

/// How long a keeper that holds nothing waits for its first server.
const FIRST_SERVER_WAIT: Duration = Duration::from_secs(10);

/// The keeper's lock file, below the data directory: one keeper per data directory.
pub const LOCK_FILE: &str = "keeper.lock";

struct Held {
    pid: u32,
    /// The PTY's master and the pipe the server moves output through on its way to the
    /// transcript (what a server that died took from the PTY but had not recorded yet waits
    /// there for the next one). Let go once the server is done with the session.
    fds: Option<[OwnedFd; 3]>,
    exit: Option<Exit>,
    /// The server is done with it: reap it as soon as it has ended.
    reap_on_exit: bool,
}

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

    let started = Instant::now();
    let mut ever_connected = false;
    let mut server: Option<OwnedFd> = None;
    let mut held: HashMap<String, Held> = HashMap::new();
    loop {
        if held.is_empty()
            && server.is_none()
            && (ever_connected || started.elapsed() > FIRST_SERVER_WAIT)
        {
            return Ok(());
        }
        let (listener_ready, sigchld_ready, server_ready) = {
            let mut fds = vec![
                PollFd::new(listener.as_fd(), PollFlags::POLLIN),
                PollFd::new(sigchld.as_fd(), PollFlags::POLLIN),
            ];
            if let Some(server) = &server {
                fds.push(PollFd::new(server.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::from(1000u16)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(err) => return Err(format!("poll failed: {err}")),
            }
            let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
            (
                ready(&fds[0]),
                ready(&fds[1]),
                fds.get(2).is_some_and(ready),
            )
        };
        if sigchld_ready {
            while let Ok(Some(_)) = sigchld.read_signal() {}
            notice_exits(&mut held, server.as_ref());
            reap_ended(&mut held);
        }
        if listener_ready && let Some(conn) = accept_server(&listener, data_dir) {
            server = Some(conn);
            ever_connected = true;
        }
        if server_ready && let Some(conn) = &server {
            match wire::receive::<Request>(conn.as_raw_fd()) {
                Ok(Some((request, _))) => {
                    if !serve(request, conn, &mut held) {
                        server = None;
                    }
                }
                Ok(None) | Err(_) => server = None,
            }
        }
    }
}

/// Answers one request; `false` when the server must be dropped.
fn serve(request: Request, conn: &OwnedFd, held: &mut HashMap<String, Held>) -> bool {
    let socket = conn.as_raw_fd();
    let sent = match request {
        Request::Hello { version } => {
            let hello = Reply::Hello {
                version: wire::VERSION,
                pid: std::process::id(),
            };
            let sent = wire::send(socket, &hello, &[]);
            if version != wire::VERSION {
                return false;
            }
            sent
        }
        Request::Spawn {
            id,
            argv,
            cwd,
            env,
            cols,
            rows,
        } => match spawn(&argv, &cwd, &env, cols, rows) {
            Ok((pid, master, pipe)) => {
                let sent = wire::send(
                    socket,
                    &Reply::Spawned {
                        id: id.clone(),
                        pid,
                    },
                    &[wire::raw(&master), wire::raw(&pipe.0), wire::raw(&pipe.1)],
                );
                held.insert(
                    id,
                    Held {
                        pid,
                        fds: Some([master, pipe.0, pipe.1]),
                        exit: None,
                        reap_on_exit: false,
                    },
                );
                sent
            }
            Err(err) => wire::send(
                socket,
                &Reply::Failed {
                    id,
                    message: err.to_string(),
                    errno: err.raw_os_error(),
                },
                &[],
            ),
        },
        Request::List => {
            let mut sent = Ok(());
            for (id, session) in held.iter() {
                let Some(fds) = &session.fds else {
                    // Given up by its server: not to be taken over.
                    continue;
                };
                let reply = Reply::Held {
                    id: id.clone(),
                    pid: session.pid,
                    exit: session.exit.clone(),
                };
                sent =
                    sent.and_then(|()| wire::send(socket, &reply, &fds.each_ref().map(wire::raw)));
            }
            sent.and_then(|()| wire::send(socket, &Reply::End, &[]))
        }
        Request::Reap { id } => {
            if let Some(session) = held.get_mut(&id) {
                session.reap_on_exit = true;
                // A program still running when its server gave it up is hung up, as by a
                // terminal closing.
                session.fds = None;
            }
            reap_ended(held);
            Ok(())
        }
    };
    sent.is_ok()
}

/// Starts `argv` on a new PTY of `cols`×`rows`; returns its pid, the PTY's master and the
/// output pipe (read end, write end; non-blocking).
fn spawn(
    argv: &[String],
    cwd: &str,
    env: &[String],
    cols: u16,
    rows: u16,
) -> std::io::Result<(u32, OwnedFd, (OwnedFd, OwnedFd))> {
    let pipe = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
    let env: Vec<Vec<u8>> = env
        .iter()
        .filter_map(|pair| wire::decode_env(pair))
        .collect();
    let size = Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(&size, None)?;
    for fd in [&pty.master, &pty.slave] {
        nix::fcntl::fcntl(
            fd.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )?;
    }
    let tty = nix::unistd::ttyname(&pty.slave)?;
    let pid = child::spawn_on_terminal(
        &tty,
        &Program {
            argv,
            cwd: Path::new(cwd),
            env: &env,
        },
    )?;
    // Only the program holds the terminal side: it gets EOF/SIGHUP as a terminal's would.
    drop(pty.slave);
    Ok((pid, pty.master, pipe))
}

/// Records the end of every held leader that has ended (read without reaping it) and tells
/// the server.
fn notice_exits(held: &mut HashMap<String, Held>, server: Option<&OwnedFd>) {
    for (id, session) in held.iter_mut().filter(|(_, s)| s.exit.is_none()) {
        let pid = Pid::from_raw(session.pid as i32);
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        let exit = match waitid(Id::Pid(pid), flags) {
            Ok(WaitStatus::Exited(_, code)) => Exit {
                code: Some(code),
                signal: None,
            },
            Ok(WaitStatus::Signaled(_, signal, _)) => Exit {
                code: None,
                signal: Some(signal.as_str().to_owned()),
            },
            _ => continue,
        };
        session.exit = Some(exit.clone());
        if session.reap_on_exit {
            continue;
        }
        if let Some(server) = server {
            let reply = Reply::Exited {
                id: id.clone(),
                exit,
            };
            let _ = wire::send(server.as_raw_fd(), &reply, &[]);
        }
    }
}

/// Reaps the leaders that have ended and that the server is done with, letting their PTYs go.
fn reap_ended(held: &mut HashMap<String, Held>) {
    held.retain(|_, session| {
        let done = session.reap_on_exit && session.exit.is_some();
        if done {
            let _ = waitpid(Pid::from_raw(session.pid as i32), None);
        }
        !done
    });
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
