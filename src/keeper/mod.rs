//! The keeper: a small process, the same binary (`monkeyproof keeper DATA_DIR`), that starts the
//! sessions' programs, holds their PTYs and records their output, so the programs outlive the
//! server (see `daemon.rs`). This module is the server's side of it: connecting (starting the
//! keeper when none runs), asking it to start programs, taking their output (`dispatch.rs`),
//! learning of their ends, and listing what it holds for a server that starts again.

mod bulk;
pub mod child;
mod connection;
pub mod daemon;
mod dispatch;
mod forked;
mod held;
pub mod launcher;
mod transcripts;
mod wire;

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
use tokio::sync::oneshot;

pub use dispatch::{OutputSink, PAUSE};
pub use wire::{Exit, SOCKET};

use dispatch::Routes;

/// How long the server waits for a keeper it started to listen.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the server waits for the keeper to answer a request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A session the keeper holds, as a server that starts again finds it.
pub struct HeldSession {
    pub id: String,
    pub pid: u32,
    /// The PTY's master (the keeper reads it; the server writes and resizes).
    pub master: OwnedFd,
    /// How it ended, if it has (its leader is not reaped yet).
    pub exit: Option<Exit>,
    /// Bytes of output read so far: where its transcript ends.
    pub offset: u64,
    /// Adopted from a keeper that died (see `Keeper::adopt`): not the keeper's child, so its
    /// end is not reported and it is not to be signalled.
    pub orphan: bool,
}

/// Why the keeper could not start a program.
#[derive(Debug)]
pub struct SpawnFailure {
    pub message: String,
    /// The OS error, when there was one.
    pub errno: Option<i32>,
}

/// The server's connection to its keeper.
pub struct Keeper {
    socket: OwnedFd,
    /// One request at a time: the answers come back in order.
    asking: Mutex<mpsc::Receiver<(wire::Reply, Vec<OwnedFd>)>>,
    routes: Arc<Routes>,
    /// It takes `Typed` (see `typed`).
    takes_typed: bool,
}

/// A program to start on a new PTY.
pub struct Launch<'a> {
    pub argv: &'a [String],
    pub cwd: &'a Path,
    /// Exactly the program's environment.
    pub env: &'a [(std::ffi::OsString, std::ffi::OsString)],
    /// Columns and rows.
    pub size: (u16, u16),
    /// An empty file its output is appended to once watched.
    pub transcript: &'a Path,
    /// The files of the session's cgroups the program writes itself into before it runs
    /// (`cgroup.procs`, or v1's `tasks`).
    pub cgroups: &'a [PathBuf],
}

impl Keeper {
    /// Connects to the keeper of `data_dir`, if one runs. Blocking.
    pub fn connect_running(data_dir: &Path) -> Result<Option<Self>, String> {
        let path = data_dir.join(SOCKET);
        if UnixAddr::new(path.as_os_str().as_bytes()).is_err() {
            return Err(format!(
                "the keeper's socket {} is too long a path for a Unix socket (108 bytes at \
                 most): choose a shorter MONKEYPROOF_DATA_DIR",
                path.display()
            ));
        }
        match connect_socket(&path) {
            Ok(socket) => Self::hello(socket).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Connects to the keeper of `data_dir`, starting one if none runs. Blocking.
    pub fn connect_or_start(data_dir: &Path) -> Result<Self, String> {
        if let Some(keeper) = Self::connect_running(data_dir)? {
            return Ok(keeper);
        }
        start_keeper(data_dir)?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match connect_socket(&data_dir.join(SOCKET)) {
                Ok(socket) => return Self::hello(socket),
                Err(err) if Instant::now() > deadline => {
                    return Err(format!("the keeper did not start listening: {err}"));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    fn hello(socket: OwnedFd) -> Result<Self, String> {
        let (answers, asking) = mpsc::channel();
        let routes = Arc::new(Routes::default());
        let raw = socket.as_raw_fd();
        wire::send(
            raw,
            &wire::Request::Hello {
                version: wire::VERSION,
            },
            &[],
        )
        .map_err(|e| format!("cannot talk to the keeper: {e}"))?;
        let (pid, version, takes_typed) = match wire::receive::<wire::Reply>(raw) {
            Ok(Some((
                wire::Reply::Hello {
                    version,
                    pid,
                    takes_typed,
                },
                _,
            ))) => (pid, version, takes_typed),
            other => return Err(format!("the keeper did not answer as expected: {other:?}")),
        };
        if version != wire::VERSION {
            return Err(format!(
                "the keeper (pid {pid}) speaks protocol {version}, this server {}: stop its \
                 sessions, or run the server that started it",
                wire::VERSION
            ));
        }
        let reader = socket
            .try_clone()
            .map_err(|e| format!("cannot talk to the keeper: {e}"))?;
        let for_reader = routes.clone();
        std::thread::Builder::new()
            .name("keeper-read".into())
            .spawn(move || dispatch::read_loop(reader, answers, for_reader))
            .map_err(|e| format!("cannot talk to the keeper: {e}"))?;
        Ok(Self {
            socket,
            asking: Mutex::new(asking),
            routes,
            takes_typed,
        })
    }

    /// Starts a program on a new PTY (see `Launch`). Returns its pid and the PTY's master.
    /// Blocking.
    pub fn spawn(&self, id: &str, launch: &Launch) -> Result<(u32, OwnedFd), SpawnFailure> {
        let request = wire::Request::Spawn(wire::Spawn {
            id: id.to_owned(),
            argv: launch.argv.to_vec(),
            cwd: launch.cwd.to_string_lossy().into_owned(),
            env: launch
                .env
                .iter()
                .map(|(k, v)| wire::encode_env(k.as_bytes(), v.as_bytes()))
                .collect(),
            cols: launch.size.0,
            rows: launch.size.1,
            transcript: launch.transcript.to_string_lossy().into_owned(),
            cgroups: launch
                .cgroups
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
        });
        let failure = |message: String| SpawnFailure {
            message,
            errno: None,
        };
        let asking = lock(&self.asking);
        wire::send(self.socket.as_raw_fd(), &request, &[])
            .map_err(|e| failure(format!("cannot ask the keeper: {e}")))?;
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match asking.recv_timeout(left) {
                Ok((wire::Reply::Spawned { id: started, pid }, fds)) if started == id => {
                    return fds
                        .into_iter()
                        .next()
                        .map(|master| (pid, master))
                        .ok_or_else(|| {
                            // The kernel could not give us the descriptors (this server is at
                            // its open-files limit): the program is let go.
                            self.reap(id);
                            SpawnFailure {
                                message: "cannot receive the PTY from the keeper".into(),
                                errno: Some(libc::EMFILE),
                            }
                        });
                }
                Ok((
                    wire::Reply::Failed {
                        id: failed,
                        message,
                        errno,
                    },
                    _,
                )) if failed == id => {
                    return Err(SpawnFailure { message, errno });
                }
                // The late answer to a spawn that timed out: nobody serves that program, so
                // the keeper lets it go (hung up, then reaped).
                Ok((wire::Reply::Spawned { id: stale, .. }, _)) => self.reap(&stale),
                Ok(_) => {}
                Err(_) => return Err(failure("the keeper did not answer".into())),
            }
        }
    }

    /// Every session the keeper holds. Blocking.
    pub fn list(&self) -> Result<Vec<HeldSession>, String> {
        let asking = lock(&self.asking);
        wire::send(self.socket.as_raw_fd(), &wire::Request::List, &[])
            .map_err(|e| format!("cannot ask the keeper: {e}"))?;
        let mut held = Vec::new();
        loop {
            match asking.recv_timeout(ANSWER_TIMEOUT) {
                Ok((
                    wire::Reply::Held {
                        id,
                        pid,
                        exit,
                        offset,
                        orphan,
                    },
                    fds,
                )) => {
                    let master = fds
                        .into_iter()
                        .next()
                        .ok_or_else(|| format!("the keeper sent no PTY for {id}"))?;
                    held.push(HeldSession {
                        id,
                        pid,
                        master,
                        exit,
                        offset,
                        orphan,
                    });
                }
                Ok((wire::Reply::End, _)) => return Ok(held),
                Ok((other, _)) => return Err(format!("the keeper answered {other:?}")),
                Err(_) => return Err("the keeper did not answer".into()),
            }
        }
    }

    /// The end of session `id`'s program, once the keeper reports it (at once if it did).
    /// If the keeper is lost first, the sender is dropped.
    pub fn on_exit(&self, id: &str) -> oneshot::Receiver<Exit> {
        let (tx, rx) = oneshot::channel();
        let mut exits = lock(&self.routes.exits);
        if let Some(exit) = exits.reported.remove(id) {
            let _ = tx.send(exit);
        } else if !exits.lost {
            exits.waiting.insert(id.to_owned(), tx);
        }
        rx
    }

    /// Tells the keeper that session `id`'s processes are gone: it reaps the leader and closes
    /// the PTY. Fire and forget.
    pub fn reap(&self, id: &str) {
        let _ = wire::send(
            self.socket.as_raw_fd(),
            &wire::Request::Reap { id: id.to_owned() },
            &[],
        );
    }

    /// Tells the keeper that somebody typed into session `id`, so its output goes ahead of
    /// other sessions' floods (see `bulk.rs`). Fire and forget; a keeper that does not take it
    /// is not told.
    pub fn typed(&self, id: &str) {
        if self.takes_typed {
            let request = wire::Request::Typed { id: id.to_owned() };
            let _ = wire::send(self.socket.as_raw_fd(), &request, &[]);
        }
    }

    /// Whether the connection to the keeper broke.
    pub fn is_lost(&self) -> bool {
        lock(&self.routes.exits).lost
    }

    /// Hands this keeper the PTY `master` of session `id` (program `pid`, `offset` bytes of
    /// output in `transcript`), which the keeper that started it held until it died. Watch it
    /// next.
    pub fn adopt(
        &self,
        id: &str,
        pid: u32,
        transcript: &Path,
        offset: u64,
        master: &OwnedFd,
    ) -> Result<(), String> {
        let request = wire::Request::Adopt {
            id: id.to_owned(),
            pid,
            transcript: transcript.to_string_lossy().into_owned(),
            offset,
        };
        wire::send(self.socket.as_raw_fd(), &request, &[master.as_raw_fd()])
            .map_err(|e| format!("cannot hand the PTY to the keeper: {e}"))
    }

    /// Has the keeper read session `id`'s output and hand it to `sink` from now on, until
    /// `sink.closed()`. If the keeper is lost already, `sink.closed()` is called at once.
    pub fn watch(&self, id: &str, sink: std::sync::Weak<dyn OutputSink>) {
        lock(&self.routes.sinks).insert(id.to_owned(), sink.clone());
        let request = wire::Request::Watch { id: id.to_owned() };
        if self.is_lost() || wire::send(self.socket.as_raw_fd(), &request, &[]).is_err() {
            lock(&self.routes.sinks).remove(id);
            if let Some(sink) = sink.upgrade() {
                sink.closed();
            }
        }
    }

    /// Has the keeper stop reading session `id`'s output; its sink hears `closed()` after the
    /// last output read.
    pub fn unwatch(&self, id: &str) {
        let request = wire::Request::Unwatch { id: id.to_owned() };
        if wire::send(self.socket.as_raw_fd(), &request, &[]).is_err()
            && let Some(sink) = lock(&self.routes.sinks).remove(id)
            && let Some(sink) = sink.upgrade()
        {
            sink.closed();
        }
    }
}

fn connect_socket(path: &Path) -> std::io::Result<OwnedFd> {
    let addr = UnixAddr::new(path.as_os_str().as_bytes())?;
    let socket = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    connect(socket.as_raw_fd(), &addr)?;
    Ok(socket)
}

/// Starts `monkeyproof keeper DATA_DIR` in a session of its own (no terminal's signals reach
/// it, and a stop of the server's process group leaves it) and not as this server's child
/// (forked twice: init is its parent, so nothing of the server waits for it), its log in the
/// data directory.
fn start_keeper(data_dir: &Path) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(data_dir.join("keeper.log"))
        .map_err(|e| format!("cannot open the keeper's log: {e}"))?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("keeper")
        .arg(data_dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    for secret in crate::config::SECRET_ENV_VARS {
        command.env_remove(secret);
    }
    // SAFETY: setsid, fork and _exit are async-signal-safe; nothing else runs between fork
    // and exec.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid()?;
            match nix::unistd::fork()? {
                nix::unistd::ForkResult::Child => Ok(()),
                nix::unistd::ForkResult::Parent { .. } => libc::_exit(0),
            }
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start the keeper: {e}"))?;
    // The intermediate process, which exits at once.
    let _ = child.wait();
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The pids of the keepers serving `data_dir` (at most one, unless one is exiting), found by
/// their command line.
pub fn keeper_pids(data_dir: &Path) -> Vec<u32> {
    let mut wanted = b"keeper\0".to_vec();
    wanted.extend_from_slice(data_dir.as_os_str().as_bytes());
    wanted.push(0);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(wanted.len()).any(|w| w == wanted))
        })
        .collect()
}
