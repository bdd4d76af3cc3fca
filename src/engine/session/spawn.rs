//! Starting a session: the PTY, the program on it, the descriptors the session keeps, and the
//! tasks that serve it. Also resizing the PTY, the other thing done to the PTY itself.

use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use portable_pty::{PtySize, native_pty_system};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

use super::super::child::{self, Program};
use super::super::events::{EventBus, EventKind};
use super::super::output::OutputLog;
use super::super::screen::{Screen, TermSize};
use super::input::InputQueue;
use super::{InputError, Session, SessionKind, SessionStatus, State, lifecycle, lock};
use crate::store::Store;

/// Everything needed to start a session's program.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    pub kind: SessionKind,
    pub task: String,
    /// Program and arguments; `argv[0]` is looked up in `PATH`.
    pub argv: Vec<String>,
    /// Absolute working directory; must exist.
    pub cwd: PathBuf,
    /// Variables set over the server's environment.
    pub env: Vec<(String, String)>,
    pub owner: Option<String>,
    pub labels: Vec<String>,
    pub size: TermSize,
    /// The task is typed in once the program is idle, rather than passed in `argv`.
    pub task_typed: bool,
    /// Who asked for the session (e.g. the client's address), for the audit log.
    pub requested_by: String,
}

/// Why a session could not be started.
#[derive(Debug)]
pub enum SpawnError {
    /// The request was fine but names something that is not there (cwd, program).
    Invalid(String),
    /// The server is out of a resource (file descriptors, processes, threads) for now.
    Exhausted(String),
    /// The server could not do its part (PTY, transcript file).
    Internal(String),
}

impl SpawnError {
    /// `Exhausted` when `err` is running out of descriptors, processes or threads, else `Internal`.
    fn from_io(what: &str, err: &std::io::Error) -> Self {
        let message = format!("{what}: {err}");
        match err.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE | libc::EAGAIN | libc::ENOMEM) => {
                Self::Exhausted(message)
            }
            _ if err.kind() == ErrorKind::OutOfMemory => Self::Exhausted(message),
            _ => Self::Internal(message),
        }
    }

    /// The same for portable-pty's errors, which mostly carry the OS error only as text
    /// (`failed to openpty: Os { code: 24, … }`).
    fn from_pty(what: &str, err: &anyhow::Error) -> Self {
        if let Some(io) = err.chain().find_map(|e| e.downcast_ref::<std::io::Error>()) {
            return Self::from_io(what, io);
        }
        let text = format!("{err:?}");
        let code = text
            .split("Os { code: ")
            .nth(1)
            .and_then(|rest| rest.split(',').next()?.parse().ok());
        match code {
            Some(code) => Self::from_io(what, &std::io::Error::from_raw_os_error(code)),
            None => Self::Internal(format!("{what}: {err}")),
        }
    }
}

/// A started session whose reader and exit task wait for `serve`, so that whoever registers
/// the session can announce it before anything it does is reported.
pub struct Start {
    reader: std::sync::mpsc::Sender<()>,
    exit: tokio::sync::oneshot::Sender<()>,
}

impl Start {
    /// Lets the session's output be read and its exit be noticed.
    pub fn serve(self) {
        let _ = self.reader.send(());
        let _ = self.exit.send(());
    }
}

impl Session {
    /// Starts `spec.argv` in a new PTY, with the tasks that will serve it once `Start::serve` is
    /// called. Blocking (it starts a process): call it off the async workers, within a runtime.
    pub(crate) fn spawn(
        id: String,
        spec: SpawnSpec,
        transcript_path: PathBuf,
        ring_capacity: usize,
        env_remove: &[String],
        events: Arc<EventBus>,
        store: Option<Arc<Store>>,
    ) -> Result<(Arc<Session>, Start), SpawnError> {
        if !spec.cwd.is_dir() {
            let why = if spec.cwd.exists() {
                "is not a directory"
            } else {
                "does not exist"
            };
            return Err(SpawnError::Invalid(format!(
                "cwd {why}: {}",
                spec.cwd.display()
            )));
        }
        let Some(program) = spec.argv.first() else {
            return Err(SpawnError::Invalid("command is empty".into()));
        };
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| SpawnError::Internal("no async runtime to serve the session".into()))?;
        let log = OutputLog::create(&transcript_path, ring_capacity)
            .map_err(|e| SpawnError::from_io("cannot create the transcript", &e))?;
        // A spawn that fails from here on leaves no transcript behind.
        let mut transcript_guard = RemoveOnDrop(Some(transcript_path.clone()));

        let pair = native_pty_system()
            .openpty(pty_size(spec.size))
            .map_err(|e| SpawnError::from_pty("cannot open a PTY", &e))?;
        let spawned = pair
            .master
            .tty_name()
            .ok_or_else(|| std::io::Error::other("the PTY has no name"))
            .and_then(|tty| {
                child::spawn_on_terminal(
                    &tty,
                    &Program {
                        argv: &spec.argv,
                        cwd: &spec.cwd,
                        env_remove,
                        env: &spec.env,
                    },
                )
            });
        // Our copy of the slave must go, or the reader never sees EOF.
        drop(pair.slave);
        let pid = spawned.map_err(|err| match SpawnError::from_io("", &err) {
            SpawnError::Exhausted(_) => {
                SpawnError::Exhausted(format!("cannot start {program}: {err}"))
            }
            _ => SpawnError::Invalid(format!("cannot start {program}: {err}")),
        })?;

        // Our own descriptors (close-on-exec) for reading and writing, so the reader can poll
        // without racing the master's release. The PTY is made non-blocking: the reader reads
        // until it has nothing and only then waits in `poll`, and input is written from async
        // code that must never block.
        let descriptors = pair
            .master
            .as_raw_fd()
            .ok_or(Errno::EBADF)
            .and_then(|fd| {
                let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
                fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
                let dup = || {
                    fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(0))
                        // SAFETY: the duplicate is a fresh descriptor that nothing else owns.
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
                };
                Ok((File::from(dup()?), dup()?))
            })
            .map_err(std::io::Error::from)
            .and_then(|(reader, writer)| {
                let _runtime = runtime.enter();
                // Writability only: registered for reading too, every chunk of output would
                // wake the runtime for nothing.
                // SAFETY: the descriptor is ours alone and stays open while registered: the
                // `AsyncFd` owns it.
                let writer =
                    unsafe { AsyncFd::register_with_interest(writer, Interest::WRITABLE)? };
                let exited = child::exit_notice(pid)?;
                Ok((reader, writer, exited))
            });
        let (reader, writer, exited) = match descriptors {
            Ok(descriptors) => descriptors,
            Err(err) => {
                lifecycle::abandon(pid);
                return Err(SpawnError::from_io("cannot attach to the PTY", &err));
            }
        };

        let (input, writer) = InputQueue::new(writer);
        let session = Arc::new(Session {
            id,
            kind: spec.kind,
            task: spec.task,
            argv: spec.argv,
            cwd: spec.cwd,
            owner: spec.owner,
            labels: spec.labels,
            created_at: SystemTime::now(),
            pid,
            requested_by: spec.requested_by,
            state: Mutex::new(State {
                log,
                screen: Screen::new(spec.size),
                size: spec.size,
                status: SessionStatus::Running,
                exit: None,
                ended_at: None,
                last_output_at: None,
                reader_done: false,
            }),
            changed: watch::channel(0).0,
            events,
            input,
            answered: Mutex::default(),
            master: Mutex::new(Some(pair.master)),
            processes: lifecycle::Processes::default(),
            stop_reading: AtomicBool::new(false),
            viewers: AtomicUsize::new(0),
            task_delivered_at: Mutex::new((!spec.task_typed).then(SystemTime::now)),
            reported: Mutex::default(),
            ring_capacity,
            store,
        });

        let (reader_go, reader_wait) = std::sync::mpsc::channel();
        let (exit_go, exit_wait) = tokio::sync::oneshot::channel();
        let for_reader = session.clone();
        let short_id: String = session.id.chars().take(8).collect();
        let started = std::thread::Builder::new()
            .name(format!("pty-read-{short_id}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                // Whether released or abandoned, the reader then reads.
                let _ = reader_wait.recv();
                for_reader.read_loop(reader);
            });
        if let Err(err) = started {
            lifecycle::abandon(pid);
            return Err(SpawnError::from_io(
                "cannot start serving the session",
                &err,
            ));
        }
        runtime.spawn(writer);
        let for_exit = session.clone();
        runtime.spawn(async move {
            let _ = exit_wait.await;
            for_exit.wait_for_exit(exited).await;
        });
        transcript_guard.0 = None;
        Ok((
            session,
            Start {
                reader: reader_go,
                exit: exit_go,
            },
        ))
    }

    /// Resizes the PTY (the program gets SIGWINCH) and the screen model, and reports it.
    pub fn resize(&self, size: TermSize) -> Result<(), InputError> {
        {
            // Held until the event is out, so resize events are in the order resizes happened.
            let master = lock(&self.master);
            let master = master.as_ref().ok_or(InputError::NotRunning)?;
            if self.status() != SessionStatus::Running {
                return Err(InputError::NotRunning);
            }
            master
                .resize(pty_size(size))
                .map_err(|_| InputError::NotRunning)?;
            let changed = {
                let mut state = self.lock_state();
                let changed = state.size != size;
                state.screen.resize(size);
                state.size = size;
                changed
            };
            if changed {
                self.emit(EventKind::Resize(size));
            }
        }
        self.publish();
        Ok(())
    }

    /// Tells the reader thread to finish (within its poll interval), releasing the PTY.
    pub(crate) fn stop_reading(&self) {
        self.stop_reading.store(true, Ordering::Relaxed);
    }
}

/// Removes a file when dropped, unless disarmed by taking the path out.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn pty_size(size: TermSize) -> PtySize {
    PtySize {
        rows: size.rows,
        cols: size.cols,
        pixel_width: 0,
        pixel_height: 0,
    }
}
