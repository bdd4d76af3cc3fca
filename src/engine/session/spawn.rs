//! Starting a session: the PTY, the program on it, the descriptors the session keeps, and the
//! tasks that serve it. Also resizing the PTY, the other thing done to the PTY itself.

use std::io::ErrorKind;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::SystemTime;

use tokio::sync::watch;

use super::super::cgroup::{Cgroups, LimitRequest, Membership};
use super::super::events::{EventBus, EventKind};
use super::super::output::OutputLog;
use super::super::recording::size_text;
use super::super::screen::{Screen, TermSize};
use super::input::InputQueue;
use super::reader::Timing;
use super::{InputError, Session, SessionKind, SessionStatus, State, activity, lifecycle, lock};
use crate::keeper::{Keeper, Launch, OutputSink, child};
use crate::store::{MarkKind, Store, Timeline};

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
    /// A name for people (not an address: ids are).
    pub name: Option<String>,
    pub owner: Option<String>,
    pub labels: Vec<String>,
    pub size: TermSize,
    /// The task is typed in once the program is idle, rather than passed in `argv`.
    pub task_typed: bool,
    /// Who asked for the session (e.g. the client's address), for the audit log.
    pub requested_by: String,
    /// Input is recorded too (`i` marks).
    pub record_input: bool,
    /// The agent it runs, if any (see `agent::launch`).
    pub agent: Option<crate::agent::AgentSpec>,
    /// Limits of its cgroup beyond the server's defaults.
    pub limits: LimitRequest,
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
}

/// A started session whose output and exit wait for `serve`, so that whoever registers the
/// session can announce it before anything it does is reported.
pub struct Start {
    session: Weak<Session>,
    exit: tokio::sync::oneshot::Sender<()>,
}

impl Start {
    /// Lets the session's output be read and its exit be noticed.
    pub fn serve(self) {
        if let Some(session) = self.session.upgrade()
            && let Some(keeper) = session.holder()
        {
            let sink: Weak<dyn OutputSink> = self.session.clone();
            keeper.watch(&session.id, sink);
        }
        let _ = self.exit.send(());
    }
}

/// What a session is started or adopted with, besides its program.
pub(crate) struct Serving {
    pub ring_capacity: usize,
    pub events: Arc<EventBus>,
    pub store: Arc<Store>,
    pub keeper: Arc<Keeper>,
    pub timeline: Arc<Timeline>,
    /// Where sessions get their cgroups, when the server may make them.
    pub cgroups: Option<Arc<Cgroups>>,
    /// How many sessions may hold processes (see `Engine::running_count`).
    pub holding: Arc<AtomicUsize>,
}

impl Session {
    /// Starts `spec.argv` in a new PTY (through the keeper, which holds it), with the tasks that
    /// will serve it once `Start::serve` is called. Blocking (it waits for the keeper): call it
    /// off the async workers, within a runtime.
    pub(crate) fn spawn(
        id: String,
        spec: SpawnSpec,
        transcript_path: PathBuf,
        env_remove: &[String],
        agent: Option<crate::agent::Tracker>,
        serving: Serving,
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
        let Some(program) = spec.argv.first().cloned() else {
            return Err(SpawnError::Invalid("command is empty".into()));
        };
        let log = OutputLog::create(&transcript_path, serving.ring_capacity)
            .map_err(|e| SpawnError::from_io("cannot create the transcript", &e))?;
        // A spawn that fails from here on leaves no transcript behind.
        let mut transcript_guard = RemoveOnDrop(Some(transcript_path.clone()));
        let env = child::environment(env_remove, &spec.env);
        let cgroup = match &serving.cgroups {
            Some(cgroups) => {
                let limits = cgroups.limits_for(&spec.limits);
                let procs = cgroups
                    .create(&id, &limits)
                    .map_err(|e| SpawnError::from_io("cannot make the session's cgroup", &e))?;
                Some((
                    CgroupGuard(Some((cgroups.clone(), id.clone()))),
                    procs,
                    limits.cpu_weight,
                ))
            }
            None if spec.limits.is_empty() => None,
            None => {
                return Err(SpawnError::Invalid(
                    "memoryMax, pidsMax and cpuWeight need cgroups, which this server cannot \
                     make (its log says why)"
                        .into(),
                ));
            }
        };
        let launch = Launch {
            argv: &spec.argv,
            cwd: &spec.cwd,
            env: &env,
            size: (spec.size.cols, spec.size.rows),
            transcript: &transcript_path,
            cgroups: cgroup.as_ref().map_or(&[], |(_, procs, _)| procs),
        };
        let (pid, master) = serving.keeper.spawn(&id, &launch).map_err(|failure| {
            let err = failure
                .errno
                .map(std::io::Error::from_raw_os_error)
                .unwrap_or_else(|| std::io::Error::other(failure.message.clone()));
            match (failure.errno, SpawnError::from_io("", &err)) {
                (_, SpawnError::Exhausted(_)) => {
                    SpawnError::Exhausted(format!("cannot start {program}: {err}"))
                }
                (Some(_), _) => SpawnError::Invalid(format!("cannot start {program}: {err}")),
                (None, _) => SpawnError::Internal(failure.message),
            }
        })?;
        let keeper = serving.keeper.clone();
        let session = Session::serve(
            Parts {
                id,
                kind: spec.kind,
                task: spec.task,
                argv: spec.argv,
                cwd: spec.cwd,
                name: spec.name,
                owner: spec.owner,
                labels: spec.labels,
                created_at: SystemTime::now(),
                pid,
                requested_by: spec.requested_by,
                record_input: spec.record_input,
                log,
                screen: Screen::new(spec.size),
                size: spec.size,
                task_delivered_at: (!spec.task_typed).then(SystemTime::now),
                agent,
                orphan: false,
                exit: None,
                reported: 0,
                cpu_weight: cgroup.as_ref().map(|(_, _, weight)| *weight),
            },
            master,
            serving,
        );
        match session {
            Ok(started) => {
                transcript_guard.0 = None;
                if let Some((mut guard, ..)) = cgroup {
                    guard.0 = None;
                }
                Ok(started)
            }
            Err(err) => {
                lifecycle::abandon(pid, &keeper, &err.0);
                Err(SpawnError::from_io("cannot serve the session", &err.1))
            }
        }
    }

    /// A session serving the program `parts.pid` on the PTY `master` (non-blocking: the
    /// keeper made it so): the input queue's writer and the exit task, and the keeper reading
    /// its output, all waiting for `Start::serve`. An `exit` already known is taken as the
    /// program's end at once. The writer and resizes share the one descriptor of the master.
    pub(super) fn serve(
        parts: Parts,
        master: OwnedFd,
        serving: Serving,
    ) -> Result<(Arc<Session>, Start), (String, std::io::Error)> {
        let id = parts.id.clone();
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| (id.clone(), std::io::Error::other("no async runtime")))?;
        let master = Arc::new(master);
        let exited = match parts.exit {
            Some(exit) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let _ = tx.send(exit);
                rx
            }
            // Nobody will report its end: it is watched for another way (see `wait_for_exit`).
            None if parts.orphan => tokio::sync::oneshot::channel().1,
            None => serving.keeper.on_exit(&id),
        };
        let (parent, rehomed) = if parts.orphan {
            (None, Some(serving.keeper))
        } else {
            (Some(serving.keeper), None)
        };

        // Input is written from async code: the master is non-blocking (the keeper made it so).
        let (input, writer) = InputQueue::new(master.clone());
        let timing = Timing::from(parts.log.total());
        let session = Arc::new(Session {
            id: parts.id,
            kind: parts.kind,
            task: parts.task,
            command_line: shell_words::join(&parts.argv),
            argv: parts.argv,
            cwd: parts.cwd,
            name: parts.name,
            owner: parts.owner,
            labels: parts.labels,
            created_at: parts.created_at,
            pid: parts.pid,
            requested_by: parts.requested_by,
            record_input: parts.record_input,
            state: Mutex::new(State {
                log: parts.log,
                screen: parts.screen,
                size: parts.size,
                status: SessionStatus::Running,
                exit: None,
                ended_at: None,
                last_output_at: None,
                reader_done: false,
                shared: Default::default(),
            }),
            changed: watch::channel(0).0,
            events: serving.events,
            input,
            answered: Mutex::default(),
            master: Mutex::new(Some(master)),
            processes: lifecycle::Processes::running(&serving.holding),
            timing: Mutex::new(timing),
            viewers: AtomicUsize::new(0),
            typed_told: Default::default(),
            task_delivered_at: Mutex::new(parts.task_delivered_at),
            reported: Mutex::new(activity::Reported::up_to(parts.reported)),
            stirred: AtomicBool::new(false),
            listed_once: OnceLock::new(),
            ring_capacity: serving.ring_capacity,
            store: Some(serving.store),
            keeper: parent,
            rehomed: Mutex::new(rehomed),
            agent: parts.agent.map(Mutex::new),
            timeline: Some(serving.timeline),
            cgroup: serving
                .cgroups
                .zip(parts.cpu_weight)
                .map(|(cgroups, cpu_weight)| Membership {
                    cgroups,
                    cpu_weight,
                }),
        });

        let (exit_go, exit_wait) = tokio::sync::oneshot::channel();
        runtime.spawn(writer);
        let for_exit = session.clone();
        runtime.spawn(async move {
            let _ = exit_wait.await;
            for_exit.wait_for_exit(exited).await;
        });
        let start = Start {
            session: Arc::downgrade(&session),
            exit: exit_go,
        };
        Ok((session, start))
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
            set_pty_size(master, size).map_err(|_| InputError::NotRunning)?;
            let changed = {
                let mut state = self.lock_state();
                let changed = state.size != size;
                state.screen.resize(size);
                state.size = size;
                if changed {
                    let offset = state.log.total();
                    self.mark(MarkKind::Resize, offset, SystemTime::now(), size_text(size));
                }
                changed
            };
            if changed {
                self.emit(EventKind::Resize(size));
            }
        }
        self.publish();
        Ok(())
    }

    /// Returns once the session's output is all taken (see `stop_reading`), or after `limit`.
    pub(crate) async fn reader_done_within(&self, limit: std::time::Duration) {
        let mut changes = self.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        while !self.lock_state().reader_done {
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return;
            }
        }
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

/// Sets the PTY's window size; the program's foreground process group gets SIGWINCH.
fn set_pty_size(master: &OwnedFd, size: TermSize) -> std::io::Result<()> {
    let winsize = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &winsize) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The PTY's window size, as the program sees it.
pub(super) fn pty_size(master: &OwnedFd) -> std::io::Result<TermSize> {
    let mut winsize = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize to a valid pointer.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGWINSZ, &mut winsize) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    TermSize::new(winsize.ws_col, winsize.ws_row)
        .ok_or_else(|| std::io::Error::other("the PTY has no size"))
}

/// The fixed facts of a session and the state it starts serving with.
pub(super) struct Parts {
    pub id: String,
    pub kind: SessionKind,
    pub task: String,
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub name: Option<String>,
    pub owner: Option<String>,
    pub labels: Vec<String>,
    pub created_at: SystemTime,
    pub pid: u32,
    pub requested_by: String,
    pub record_input: bool,
    pub log: OutputLog,
    pub screen: Screen,
    pub size: TermSize,
    pub task_delivered_at: Option<SystemTime>,
    /// The agent's tracker, when it runs one.
    pub agent: Option<crate::agent::Tracker>,
    /// Adopted by a keeper that is not its parent (see `HeldSession::orphan`).
    pub orphan: bool,
    /// The program's end, when the keeper already knows it.
    pub exit: Option<crate::keeper::Exit>,
    /// Output up to this offset was reported by an earlier server.
    pub reported: u64,
    /// It has a cgroup of its own (see `Serving::cgroups`), with this CPU weight when not
    /// throttled.
    pub cpu_weight: Option<u64>,
}

/// Removes a session's cgroup unless disarmed (`None`): a spawn that fails leaves none behind.
struct CgroupGuard(Option<(Arc<Cgroups>, String)>);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        if let Some((cgroups, id)) = self.0.take() {
            cgroups.remove(&id);
        }
    }
}
