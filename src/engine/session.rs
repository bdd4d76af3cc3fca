//! One terminal session: a program in a real PTY, its output log, its screen model and its
//! lifecycle (running → exited or killed).
//!
//! One OS thread serves each session: the reader, which moves PTY output into the log and the
//! screen under one lock (so a snapshot is always "as of byte N"). A task awaits the program's
//! exit through a pidfd and reaps it (reader EOF is not exit: a background job may hold the PTY
//! open).
//! Viewers never receive pushed data; they are woken through a watch channel and read from the
//! shared ring at their own pace (see `viewer.rs`), so no viewer can block the PTY or another.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use portable_pty::{MasterPty, PtySize, native_pty_system};
use serde::{Deserialize, Serialize};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

use super::answers::{QueryKind, classify_replies};
use super::child::{self, Program};
use super::keys::{Key, paste_bytes};
use super::output::OutputLog;
use super::process;
use super::screen::{Screen, ScreenText, TermSize};
use super::wait::{Fired, WaitFor};

/// How long the exit task lets the reader drain output written just before the program exited.
const EXIT_DRAIN: Duration = Duration::from_millis(500);
/// How often a blocked reader wakes to see whether it was told to stop.
const READER_POLL_MS: u16 = 250;
/// How long a program must be quiet after start before a typed task is pasted in.
pub const TASK_DELIVERY_IDLE: Duration = Duration::from_millis(1000);
/// The longest a typed task waits for that quiet before it is pasted anyway.
pub const TASK_DELIVERY_LIMIT: Duration = Duration::from_secs(60);
/// Pause between the separate writes of one input (e.g. text, then Enter).
const PAUSE_BETWEEN_WRITES: Duration = Duration::from_millis(20);
/// The most output recorded before viewers are woken, and the largest single PTY read.
const READ_CHUNK: usize = 32 * 1024;
/// How long output must pause before the reader draws the screen's backlog (so reading a quiet
/// screen is instant and its backlog's memory is given back).
const DRAW_BACKLOG_AFTER_MS: u16 = 20;

/// What kind of session this is; decides defaults (size, TTL, Enter after input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    /// A shell command (`/bin/sh -lc TASK`) or an explicit program.
    Exec,
    /// A one-shot agent run that prints its answer and exits.
    Print,
    /// A long-lived agent a person or orchestrator talks to.
    Interactive,
}

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    Running,
    /// The program ended by itself.
    Exited,
    /// Somebody (DELETE, shutdown) killed it; stays `killed` after the program is gone.
    Killed,
}

/// How the program ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    /// The exit code, when the program exited normally.
    pub code: Option<i32>,
    /// The terminating signal's name (e.g. `SIGTERM`), when a signal ended it.
    pub signal: Option<String>,
}

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

/// Why input or a resize was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum NotRunning {
    NotRunning,
}

/// One session. Shared as `Arc<Session>` by the registry, its threads and its viewers.
pub struct Session {
    pub id: String,
    pub kind: SessionKind,
    pub task: String,
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub owner: Option<String>,
    pub labels: Vec<String>,
    pub created_at: SystemTime,
    pub pid: u32,
    /// Who asked for the session, for the audit log.
    pub requested_by: String,
    state: Mutex<State>,
    /// Bumped after every change viewers may care about (output, resize, exit).
    changed: watch::Sender<u64>,
    /// The PTY, for input. Writes go through an async lock so they stay whole and in order; the
    /// descriptor is non-blocking, so a program that does not read holds up only its writers.
    input: tokio::sync::Mutex<Option<AsyncFd<OwnedFd>>>,
    master: Mutex<Option<Box<dyn MasterPty + Send>>>,
    stop_reading: AtomicBool,
    kill_started: AtomicBool,
    viewers: AtomicUsize,
    task_delivered_at: Mutex<Option<SystemTime>>,
    /// Queries the server answered, newest last, for recognising viewers' duplicate answers.
    answered: Mutex<VecDeque<Answered>>,
}

/// A query the server answered.
#[derive(Debug, Clone, Copy)]
struct Answered {
    seq: u64,
    kind: QueryKind,
    at: Instant,
}

/// Answers kept for matching viewers' duplicates.
const ANSWERED_KEPT: usize = 64;
/// How long after the server answered a query a viewer's answer to it is taken as a duplicate.
pub const DUPLICATE_ANSWER_WINDOW: Duration = Duration::from_secs(3);

/// What one viewer's duplicate answers have been matched against so far.
#[derive(Debug, Default)]
pub struct ReplyFilter {
    seen: u64,
}

/// The part of a session that the reader changes, under one lock.
pub(crate) struct State {
    pub(crate) log: OutputLog,
    pub(crate) screen: Screen,
    pub(crate) size: TermSize,
    pub(crate) status: SessionStatus,
    pub(crate) exit: Option<ExitInfo>,
    pub(crate) ended_at: Option<SystemTime>,
    pub(crate) last_output_at: Option<SystemTime>,
    reader_done: bool,
}

/// A point-in-time copy of a session's changing fields.
#[derive(Debug, Clone)]
pub struct SessionSnapshot {
    pub status: SessionStatus,
    pub exit: Option<ExitInfo>,
    pub ended_at: Option<SystemTime>,
    pub last_output_at: Option<SystemTime>,
    pub output_bytes: u64,
    pub output_lines: u64,
    pub size: TermSize,
    pub viewers: usize,
    pub title: String,
    pub bells: u64,
    pub task_delivered_at: Option<SystemTime>,
    /// How long since the last output (or since creation, before any).
    pub quiet_for: Duration,
}

impl SessionSnapshot {
    /// Busy: the program has printed something within `window`.
    pub fn is_busy(&self, window: Duration) -> bool {
        self.last_output_at.is_some() && self.quiet_for < window
    }
}

impl Session {
    /// Starts `spec.argv` in a new PTY and the threads that serve it.
    pub(crate) fn spawn(
        id: String,
        spec: SpawnSpec,
        transcript_path: PathBuf,
        ring_capacity: usize,
        env_remove: &[String],
    ) -> Result<Arc<Session>, SpawnError> {
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
        // Its exit is awaited and reaped by `wait_for_exit`.
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
                // Writability only: registered for reading too, every chunk of output would
                // wake the runtime for nothing.
                // SAFETY: the descriptor is ours alone and stays open while registered: the
                // `AsyncFd` owns it.
                let writer =
                    unsafe { AsyncFd::register_with_interest(writer, Interest::WRITABLE)? };
                Ok((reader, writer))
            });
        let (reader, input) = match descriptors {
            Ok(descriptors) => descriptors,
            Err(err) => {
                abandon(pid);
                return Err(SpawnError::from_io("cannot attach to the PTY", &err));
            }
        };

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
            input: tokio::sync::Mutex::new(Some(input)),
            master: Mutex::new(Some(pair.master)),
            stop_reading: AtomicBool::new(false),
            kill_started: AtomicBool::new(false),
            viewers: AtomicUsize::new(0),
            task_delivered_at: Mutex::new((!spec.task_typed).then(SystemTime::now)),
            answered: Mutex::new(VecDeque::new()),
        });

        let short_id: String = session.id.chars().take(8).collect();
        // Answers to the program's queries are written by a task, never by the reader thread: a
        // program that does not read its input must not be able to stop its output being read.
        let (answers, mut to_answer) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let writer = session.clone();
            runtime.spawn(async move {
                while let Some(bytes) = to_answer.recv().await {
                    let _ = writer.write_input(vec![bytes]).await;
                }
            });
        }
        let for_reader = session.clone();
        let started = child::exit_notice(pid).and_then(|exited| {
            std::thread::Builder::new()
                .name(format!("pty-read-{short_id}"))
                .stack_size(256 * 1024)
                .spawn(move || for_reader.read_loop(reader, answers))?;
            tokio::spawn(session.clone().wait_for_exit(exited));
            Ok(())
        });
        if let Err(err) = started {
            session.stop_reading.store(true, Ordering::Relaxed);
            abandon(pid);
            return Err(SpawnError::from_io(
                "cannot start serving the session",
                &err,
            ));
        }
        transcript_guard.0 = None;
        Ok(session)
    }

    /// Locks the state; a panic elsewhere must not take the session down with it.
    pub(crate) fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A receiver that is woken after every change; see `viewer.rs`.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn publish(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The reader thread: PTY → transcript → ring → screen → wake viewers.
    ///
    /// A PTY buffers only ~12 KB between the program and us, so every read is recorded at once
    /// (the kernel moves the next chunk meanwhile) and the reader is straight back at the PTY;
    /// only the wake-up of viewers is batched, to once per `READ_CHUNK` or whenever the PTY has
    /// nothing more on its way.
    fn read_loop(self: Arc<Self>, pty: File, answers: UnboundedSender<Vec<u8>>) {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut backlog = false;
        let mut unpublished = 0;
        while !self.stop_reading.load(Ordering::Relaxed) {
            // The PTY is non-blocking; a read that finds nothing still waits for output the
            // kernel is moving to us right now, so EAGAIN means the program has paused.
            match (&pty).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    backlog = self.ingest(&buf[..n], &answers);
                    unpublished += n;
                    if unpublished >= READ_CHUNK {
                        self.publish();
                        unpublished = 0;
                    }
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                // EIO once every slave descriptor is closed: no more output.
                Err(_) => break,
            }
            if unpublished > 0 {
                self.publish();
                unpublished = 0;
            }
            let timeout = if backlog {
                DRAW_BACKLOG_AFTER_MS
            } else {
                READER_POLL_MS
            };
            match poll(
                &mut [PollFd::new(pty.as_fd(), PollFlags::POLLIN)],
                PollTimeout::from(timeout),
            ) {
                Ok(0) if backlog => {
                    self.lock_state().screen.catch_up();
                    backlog = false;
                }
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => break,
            }
        }
        {
            let mut state = self.lock_state();
            state.reader_done = true;
            state.log.close_transcript();
        }
        self.publish();
        self.release_pty_if_done();
    }

    /// Records a chunk of output (viewers are woken by the caller); returns whether the screen
    /// has a backlog to draw.
    fn ingest(&self, bytes: &[u8], answers: &UnboundedSender<Vec<u8>>) -> bool {
        let (replies, backlog) = {
            let mut state = self.lock_state();
            state.log.append(bytes);
            state.screen.process(bytes);
            state.last_output_at = Some(SystemTime::now());
            (state.screen.take_replies(), state.screen.has_backlog())
        };
        if !replies.is_empty() {
            let mut answered = self.answered.lock().unwrap_or_else(|p| p.into_inner());
            for (kind, reply) in replies {
                let seq = answered.back().map_or(1, |a| a.seq + 1);
                if answered.len() == ANSWERED_KEPT {
                    answered.pop_front();
                }
                answered.push_back(Answered {
                    seq,
                    kind,
                    at: Instant::now(),
                });
                let _ = answers.send(reply);
            }
        }
        backlog
    }

    /// Whether `input` from a viewer is only that viewer's terminal emulator answering queries
    /// the server already answered (within `DUPLICATE_ANSWER_WINDOW`, each answer matched once
    /// per viewer): such input is dropped so the program gets one answer per query. Anything
    /// else — every keystroke and paste — is the viewer's to send.
    pub fn is_duplicate_answer(&self, filter: &mut ReplyFilter, input: &[u8]) -> bool {
        let Some(kinds) = classify_replies(input) else {
            return false;
        };
        let answered = self.answered.lock().unwrap_or_else(|p| p.into_inner());
        let mut seen = filter.seen;
        for kind in kinds {
            let matched = answered.iter().find(|a| {
                a.seq > seen && a.kind == kind && a.at.elapsed() < DUPLICATE_ANSWER_WINDOW
            });
            match matched {
                Some(a) => seen = a.seq,
                None => return false,
            }
        }
        filter.seen = seen;
        true
    }

    /// Awaits the program's end, reaps it and records how it ended, after its last output.
    async fn wait_for_exit(self: Arc<Self>, exited: AsyncFd<OwnedFd>) {
        let reaped = match exited.readable().await {
            // It has ended: reaping does not block.
            Ok(_) => self.reap(),
            Err(_) => {
                let session = self.clone();
                tokio::task::spawn_blocking(move || session.reap())
                    .await
                    .unwrap_or(ExitInfo {
                        code: None,
                        signal: None,
                    })
            }
        };
        drop(exited);
        // Output written just before the exit may still be on its way through the PTY.
        let mut changes = self.subscribe();
        let deadline = tokio::time::Instant::now() + EXIT_DRAIN;
        while !self.lock_state().reader_done {
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                break;
            }
        }
        {
            let mut state = self.lock_state();
            if state.status == SessionStatus::Running {
                state.status = SessionStatus::Exited;
            }
            tracing::info!(
                session = %self.id, requested_by = %self.requested_by, owner = ?self.owner,
                status = ?state.status, code = ?reaped.code, signal = ?reaped.signal,
                "audit: session ended"
            );
            state.exit = Some(reaped);
            state.ended_at = Some(SystemTime::now());
        }
        self.publish();
        self.release_pty_if_done();
    }

    /// Waits for the program with `waitpid` and says how it ended.
    fn reap(&self) -> ExitInfo {
        loop {
            match waitpid(Pid::from_raw(self.pid as i32), None) {
                Ok(WaitStatus::Exited(_, code)) => {
                    return ExitInfo {
                        code: Some(code),
                        signal: None,
                    };
                }
                Ok(WaitStatus::Signaled(_, signal, _)) => {
                    return ExitInfo {
                        code: None,
                        signal: Some(signal.as_str().to_owned()),
                    };
                }
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(err) => {
                    tracing::error!(session = %self.id, %err, "waitpid failed");
                    return ExitInfo {
                        code: None,
                        signal: None,
                    };
                }
            }
        }
    }

    /// Closes our PTY descriptors once the program is reaped and its output fully read.
    fn release_pty_if_done(&self) {
        {
            let state = self.lock_state();
            if !(state.reader_done && state.exit.is_some()) {
                return;
            }
        }
        self.master.lock().unwrap_or_else(|p| p.into_inner()).take();
        // A write waiting on a full PTY holds the lock; it fails once the PTY is closed, and the
        // descriptor then goes with the session.
        if let Ok(mut input) = self.input.try_lock() {
            input.take();
        }
    }

    /// Copies the changing fields.
    pub fn snapshot(&self) -> SessionSnapshot {
        let state = self.lock_state();
        SessionSnapshot {
            status: state.status,
            exit: state.exit.clone(),
            ended_at: state.ended_at,
            last_output_at: state.last_output_at,
            output_bytes: state.log.total(),
            output_lines: state.log.lines(),
            size: state.size,
            viewers: self.viewers.load(Ordering::Relaxed),
            title: state.screen.title().to_owned(),
            bells: state.screen.bells(),
            task_delivered_at: *self
                .task_delivered_at
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
            quiet_for: self.quiet_for(state.last_output_at),
        }
    }

    pub fn status(&self) -> SessionStatus {
        self.lock_state().status
    }

    /// When the session ended (exit recorded), if it has.
    pub fn ended_at(&self) -> Option<SystemTime> {
        self.lock_state().ended_at
    }

    /// The screen as text, and the byte offset it reflects.
    pub fn screen_text(&self) -> (ScreenText, u64) {
        let mut state = self.lock_state();
        (state.screen.text(), state.log.total())
    }

    /// The screen as text with up to `scrollback` rows above it, and the offset it reflects.
    pub fn screen_with_scrollback(&self, scrollback: usize) -> (ScreenText, Vec<String>, u64) {
        let mut state = self.lock_state();
        let above = state.screen.scrollback_lines(scrollback);
        (state.screen.text(), above, state.log.total())
    }

    /// The screen as a terminal would show it (escape sequences), and the offset it reflects.
    pub fn screen_ansi(&self) -> (String, u64) {
        let mut state = self.lock_state();
        (state.screen.ansi(), state.log.total())
    }

    /// `length` bytes of output from `offset`, if they are still in memory.
    pub fn output_range(&self, offset: u64, length: u64) -> Option<Vec<u8>> {
        let bytes = self.lock_state().log.read_from(offset, length as usize)?;
        (bytes.len() as u64 == length).then_some(bytes)
    }

    /// The recent output still in memory from the start of its last `lines` lines.
    pub fn recent_output_lines(&self, lines: usize) -> Vec<u8> {
        self.lock_state().log.tail_lines(lines)
    }

    /// Where the full output is kept on disk, and how many bytes it holds.
    pub fn transcript(&self) -> (PathBuf, u64) {
        let state = self.lock_state();
        (state.log.transcript_path().to_path_buf(), state.log.total())
    }

    /// Writes each of `writes` to the program's terminal as its own write, with a short pause
    /// between them; the whole sequence is atomic and in order with respect to other writers.
    ///
    /// Separate writes matter for Enter: TUI agents (Ink, crossterm) read text and `\r` arriving
    /// in one chunk as a paste and do not submit it, as a person typing would.
    pub async fn write_input(&self, writes: Vec<Vec<u8>>) -> Result<(), NotRunning> {
        if self.status() != SessionStatus::Running {
            return Err(NotRunning::NotRunning);
        }
        let input = self.input.lock().await;
        let pty = input.as_ref().ok_or(NotRunning::NotRunning)?;
        for (i, bytes) in writes.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(PAUSE_BETWEEN_WRITES).await;
            }
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let mut ready = pty.writable().await.map_err(|_| NotRunning::NotRunning)?;
                // Nothing holds the terminal's other side any more (the program is gone or
                // closed it): nobody will ever read this.
                if ready.ready().is_write_closed() {
                    return Err(NotRunning::NotRunning);
                }
                match ready.try_io(|fd| Ok(nix::unistd::write(fd.get_ref(), rest)?)) {
                    Ok(Ok(n)) => rest = &rest[n..],
                    Ok(Err(e)) if e.kind() == ErrorKind::Interrupted => {}
                    Ok(Err(_)) => return Err(NotRunning::NotRunning),
                    // The PTY is full: wait until the program reads.
                    Err(_would_block) => {}
                }
            }
        }
        Ok(())
    }

    /// How long the program has printed nothing, given when it last did.
    pub(crate) fn quiet_for(&self, last_output_at: Option<SystemTime>) -> Duration {
        SystemTime::now()
            .duration_since(last_output_at.unwrap_or(self.created_at))
            .unwrap_or_default()
    }

    /// Types `text` as it is, then Enter (as a write of its own) if asked.
    pub async fn type_text(&self, text: Vec<u8>, enter: bool) -> Result<(), NotRunning> {
        self.write_input(then_enter(text, enter)).await
    }

    /// Sends keys, each as its own write, encoded for the program's current cursor-key mode.
    pub async fn send_keys(&self, keys: &[Key]) -> Result<(), NotRunning> {
        let application_cursor = self.lock_state().screen.application_cursor();
        let writes = keys.iter().map(|k| k.encode(application_cursor)).collect();
        self.write_input(writes).await
    }

    /// Sends `text` as a paste: wrapped in bracketed-paste markers when the program enabled
    /// them (so a multi-line prompt arrives as one message), then Enter if asked.
    pub async fn paste(&self, text: &str, enter: bool) -> Result<(), NotRunning> {
        let bracketed = self.lock_state().screen.bracketed_paste();
        self.write_input(then_enter(paste_bytes(text, bracketed), enter))
            .await
    }

    /// Types the task in once the program has printed nothing for `TASK_DELIVERY_IDLE` (or
    /// after `TASK_DELIVERY_LIMIT` in any case): pasted, then Enter.
    pub async fn deliver_task_typed(&self) {
        let outcome = self
            .wait(&WaitFor {
                idle: Some(TASK_DELIVERY_IDLE),
                pattern: None,
                since: None,
                exit: false,
                timeout: TASK_DELIVERY_LIMIT,
            })
            .await;
        if outcome.fired == Fired::Exit {
            return;
        }
        match self.paste(&self.task, true).await {
            Ok(()) => {
                *self
                    .task_delivered_at
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(SystemTime::now());
                self.publish();
            }
            Err(_) => tracing::warn!(session = %self.id, "the task could not be typed in"),
        }
    }

    /// Resizes the PTY (the program gets SIGWINCH) and the screen model.
    pub fn resize(&self, size: TermSize) -> Result<(), NotRunning> {
        {
            let master = self.master.lock().unwrap_or_else(|p| p.into_inner());
            let master = master.as_ref().ok_or(NotRunning::NotRunning)?;
            if self.status() != SessionStatus::Running {
                return Err(NotRunning::NotRunning);
            }
            master
                .resize(pty_size(size))
                .map_err(|_| NotRunning::NotRunning)?;
            let mut state = self.lock_state();
            state.screen.resize(size);
            state.size = size;
        }
        self.publish();
        Ok(())
    }

    /// Kills the program's whole process session: SIGHUP + SIGTERM (+ SIGCONT, so stopped jobs
    /// can act on them), then SIGKILL to whatever is left after `grace`. Marks a running session
    /// `killed`. Returns once nothing of the session is left (or a bounded while after SIGKILL).
    pub async fn kill(&self, grace: Duration) {
        {
            let mut state = self.lock_state();
            if state.status == SessionStatus::Running {
                state.status = SessionStatus::Killed;
            }
        }
        self.publish();
        if self.kill_started.swap(true, Ordering::SeqCst) {
            // Someone else is already killing it; just sweep once more.
            self.wait_until_gone(grace).await;
            return;
        }
        for signal in [Signal::SIGHUP, Signal::SIGTERM, Signal::SIGCONT] {
            process::signal_session(self.pid, signal);
        }
        if !self.wait_until_gone(grace).await {
            process::signal_session(self.pid, Signal::SIGKILL);
            self.wait_until_gone(Duration::from_secs(1)).await;
        }
        self.kill_started.store(false, Ordering::SeqCst);
        // Processes that left the session (setsid) may still hold the PTY: stop reading anyway,
        // once the reader had a moment to drain what the killed ones wrote.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.stop_reading();
    }

    /// Polls until no live process of the session remains and the exit is recorded.
    async fn wait_until_gone(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let exited = self.lock_state().exit.is_some();
            if exited && !process::session_has_live_members(self.pid) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Tells the reader thread to finish (within its poll interval), releasing the PTY.
    pub(crate) fn stop_reading(&self) {
        self.stop_reading.store(true, Ordering::Relaxed);
    }

    /// Counts an attached viewer for as long as the returned guard lives.
    pub(crate) fn viewer_guard(self: &Arc<Self>) -> ViewerCount {
        self.viewers.fetch_add(1, Ordering::Relaxed);
        ViewerCount(self.clone())
    }
}

/// The Enter key as a terminal sends it.
pub const ENTER: &[u8] = b"\r";

/// `first`, then Enter as a separate write when asked: TUI agents (Ink, crossterm) take text and
/// `\r` arriving in one read as a paste and would not submit it.
fn then_enter(first: Vec<u8>, enter: bool) -> Vec<Vec<u8>> {
    let mut writes = vec![first];
    if enter {
        writes.push(ENTER.to_vec());
    }
    writes
}

/// Kills and reaps a program that was started but cannot be served.
fn abandon(pid: u32) {
    process::signal_session(pid, Signal::SIGKILL);
    let _ = waitpid(Pid::from_raw(pid as i32), None);
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

/// Keeps a session's viewer count up while alive.
pub(crate) struct ViewerCount(Arc<Session>);

impl Drop for ViewerCount {
    fn drop(&mut self) {
        self.0.viewers.fetch_sub(1, Ordering::Relaxed);
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
