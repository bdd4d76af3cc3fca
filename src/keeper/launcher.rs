//! The launcher (`monkeyproof keeper-launcher`, started by the keeper): a small process that
//! starts every session's program for the keeper.
//!
//! A process started straight from the keeper got a copy of the keeper's descriptor table — one
//! PTY master per session — and `exec` then closed each copy: at 10,000 sessions a start took
//! 4–5 ms more than at 1,000. The launcher holds a handful of descriptors whatever the keeper
//! holds. It creates each program with `CLONE_PARENT` (see `forked.rs`), so the program is still
//! the keeper's child: the keeper gets its SIGCHLD, reads its exit and reaps it, as before.
//!
//! Requests and answers are JSON, each after its length (u32, little-endian), on a socket pair
//! (the launcher's end is its descriptor 3). The launcher ends when the keeper's end closes; a
//! launcher that died is started again on the next request.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::child::{self, Program};
use super::wire;

/// The launcher's command (after the program's name).
pub const COMMAND: &str = "keeper-launcher";
/// The launcher's end of the socket pair.
const SOCKET_FD: i32 = 3;

/// The largest request or answer (argv and environment are bounded well below this by the
/// server's body limit).
const MAX_MESSAGE: u32 = 16 << 20;

/// What to start, and on which terminal.
#[derive(Serialize, Deserialize)]
struct Launch {
    tty: PathBuf,
    argv: Vec<String>,
    cwd: PathBuf,
    /// `wire::encode_env` pairs.
    env: Vec<String>,
    cgroups: Vec<String>,
}

#[derive(Serialize, Deserialize)]
enum Launched {
    Running {
        pid: u32,
    },
    Failed {
        errno: Option<i32>,
        message: String,
        /// A process that was created but could not run the program: the keeper (its parent)
        /// reaps it.
        child: Option<u32>,
    },
}

/// The keeper's end.
pub(super) struct Launcher {
    socket: UnixStream,
    pid: Pid,
}

impl Launcher {
    /// Starts the launcher: this same binary, as a new process (so it holds none of the
    /// keeper's memory or descriptors).
    pub(super) fn start() -> io::Result<Self> {
        let (ours, theirs) = UnixStream::pair()?;
        let theirs_fd = theirs.as_raw_fd();
        let mut command = Command::new("/proc/self/exe");
        command.arg0("monkeyproof").arg(COMMAND);
        // SAFETY: only system calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // dup2 leaves the copy without close-on-exec; a descriptor that already is 3
                // must lose the flag by hand.
                if theirs_fd == SOCKET_FD {
                    libc::fcntl(SOCKET_FD, libc::F_SETFD, 0);
                } else if libc::dup2(theirs_fd, SOCKET_FD) < 0 {
                    return Err(io::Error::last_os_error());
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn()?;
        Ok(Self {
            socket: ours,
            pid: Pid::from_raw(child.id() as i32),
        })
    }

    /// Starts `argv` on the terminal `tty`; returns its pid (a child of this process).
    pub(super) fn launch(&mut self, tty: &Path, request: &wire::Spawn) -> io::Result<u32> {
        let launch = Launch {
            tty: tty.to_path_buf(),
            argv: request.argv.clone(),
            cwd: PathBuf::from(&request.cwd),
            env: request.env.clone(),
            cgroups: request.cgroups.clone(),
        };
        let answer = match self.ask(&launch) {
            Ok(answer) => answer,
            Err(err) => {
                tracing::warn!(%err, "the launcher is gone: starting another");
                self.restart()?;
                self.ask(&launch)?
            }
        };
        match answer {
            Launched::Running { pid } => Ok(pid),
            Launched::Failed {
                errno,
                message,
                child,
            } => {
                if let Some(child) = child {
                    // It exits at once (127); it is ours to reap.
                    let _ = waitpid(Pid::from_raw(child as i32), None);
                }
                Err(match errno {
                    Some(errno) => io::Error::from_raw_os_error(errno),
                    None => io::Error::other(message),
                })
            }
        }
    }

    fn ask(&mut self, launch: &Launch) -> io::Result<Launched> {
        send(&mut self.socket, launch)?;
        receive(&mut self.socket)
    }

    fn restart(&mut self) -> io::Result<()> {
        let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
        *self = Self::start()?;
        Ok(())
    }
}

/// The launcher's life (`monkeyproof keeper-launcher`): one request at a time until the keeper's
/// end closes.
pub fn serve() -> ! {
    // SAFETY: plain system calls; descriptor 3 is the socket the keeper passed (see `start`),
    // and nothing else beyond the standard streams is the launcher's to hold.
    let mut socket = unsafe {
        libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
        UnixStream::from_raw_fd(SOCKET_FD)
    };
    while let Ok(launch) = receive::<Launch>(&mut socket) {
        let answer = run(&launch);
        if send(&mut socket, &answer).is_err() {
            break;
        }
    }
    std::process::exit(0)
}

fn run(launch: &Launch) -> Launched {
    let env: Vec<Vec<u8>> = launch
        .env
        .iter()
        .filter_map(|pair| wire::decode_env(pair))
        .collect();
    let started = child::spawn_on_terminal(
        &launch.tty,
        &Program {
            argv: &launch.argv,
            cwd: &launch.cwd,
            env: &env,
            cgroups: &launch.cgroups,
        },
    );
    match started {
        Ok(pid) => Launched::Running { pid },
        Err(failure) => Launched::Failed {
            errno: failure.error.raw_os_error(),
            message: failure.error.to_string(),
            child: failure.child,
        },
    }
}

fn send(socket: &mut UnixStream, message: &impl Serialize) -> io::Result<()> {
    let body = serde_json::to_vec(message).map_err(io::Error::other)?;
    let mut framed = Vec::with_capacity(4 + body.len());
    framed.extend_from_slice(&(body.len() as u32).to_le_bytes());
    framed.extend_from_slice(&body);
    socket.write_all(&framed)
}

fn receive<T: for<'de> Deserialize<'de>>(socket: &mut UnixStream) -> io::Result<T> {
    let mut len = [0u8; 4];
    socket.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len);
    if len > MAX_MESSAGE {
        return Err(io::Error::other("launcher message too large"));
    }
    let mut body = vec![0; len as usize];
    socket.read_exact(&mut body)?;
    serde_json::from_slice(&body).map_err(io::Error::other)
}
