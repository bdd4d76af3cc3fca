//! One terminal session: a program in a real PTY, its output log, its screen model and its
//! lifecycle (running → exited or killed → none of its processes left).
//!
//! Its state is private; each concern is a child module:
//! - `spawn`: opening the PTY, starting the program on it, resizing it.
//! - `reader`: taking the output the keeper read (and recorded) into the log and the screen
//!   under one lock (so a snapshot is always "as of byte N").
//! - `input`: the bounded queue of what is written to the program (input and terminal answers)
//!   and the task that writes it, so a program that does not read holds up only its writers.
//! - `lifecycle`: exit, reaping, kill, and knowing when none of the session's processes is left.
//! - `activity`: the events a session publishes (output, busy/idle, title, bell, resize, exit).
//! - `throttle`: the lowest CPU priority for a program that floods output, until it quiets.
//! - `viewer`, `wait`: the session's readers: viewers on the shared ring, and waiters.
//!
//! Viewers never receive pushed data; they are woken through a watch channel and read from the
//! shared ring at their own pace, so no viewer can block the PTY or another.

mod activity;
mod adopt;
mod agent;
mod input;
mod lifecycle;
mod reader;
mod recent;
mod record;
mod shared_reads;
mod spawn;
mod throttle;
mod viewer;
mod wait;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::events::EventBus;
use super::output::OutputLog;
use super::screen::{Screen, ScreenText, TermSize};

pub(crate) use adopt::abandon_unrecorded;
pub use agent::AnswerError;
pub use input::{
    DUPLICATE_ANSWER_WINDOW, InputError, MAX_QUEUED_ANSWER_BYTES, MAX_QUEUED_INPUT_BYTES,
    ReplyFilter,
};
pub use recent::FINISHED_TAIL_BYTES;
pub(crate) use spawn::Serving;
pub use spawn::{SpawnError, SpawnSpec};
pub use viewer::{AttachFrom, AttachStart, MAX_OUTPUT_CHUNK, Viewer, ViewerEvent};
pub use wait::{Fired, MAX_PATTERN_BYTES, WaitFor, WaitOutcome};

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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExitInfo {
    /// The exit code, when the program exited normally.
    pub code: Option<i32>,
    /// The terminating signal's name (e.g. `SIGTERM`), when a signal ended it.
    pub signal: Option<String>,
    /// Why it ended, when the code or signal alone does not say.
    pub reason: Option<ExitReason>,
}

/// Why a program ended, beyond its exit code or signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ExitReason {
    /// The kernel killed processes of the session for going over its `memoryMax`.
    OutOfMemory,
}

/// One session. Shared as `Arc<Session>` by the registry, its tasks and its viewers.
pub struct Session {
    pub id: String,
    pub kind: SessionKind,
    pub task: String,
    pub argv: Vec<String>,
    /// `argv` as a shell would need it typed (made once: the list shows it for every session).
    pub command_line: String,
    pub cwd: PathBuf,
    /// A name for people (not an address: ids are).
    pub name: Option<String>,
    pub owner: Option<String>,
    pub labels: Vec<String>,
    pub created_at: SystemTime,
    pub pid: u32,
    /// Who asked for the session, for the audit log.
    pub requested_by: String,
    /// Input is recorded too (`i` marks of the recording).
    pub record_input: bool,
    /// What a lister made once of the fields above that never change (the API: their JSON),
    /// kept beside them: a list of 10,000 sessions then reads one allocation per session for
    /// them rather than one per field. The engine never reads it.
    pub listed_once: OnceLock<Box<[u8]>>,
    state: Mutex<State>,
    /// Bumped after every change viewers may care about (output, resize, exit).
    changed: watch::Sender<u64>,
    /// The engine's event feed, which this session publishes to as things happen.
    events: Arc<EventBus>,
    input: Arc<input::InputQueue>,
    /// Queries the server answered, for recognising viewers' duplicate answers.
    answered: Mutex<VecDeque<input::Answered>>,
    /// The PTY's master (the keeper holds it too); let go once the session is over.
    master: Mutex<Option<Arc<std::os::fd::OwnedFd>>>,
    processes: lifecycle::Processes,
    /// When output was read, for the recording's marks.
    timing: Mutex<reader::Timing>,
    viewers: AtomicUsize,
    /// When the keeper was last told of a keystroke (see `input.rs`).
    typed_told: input::TypedTold,
    task_delivered_at: Mutex<Option<SystemTime>>,
    reported: Mutex<activity::Reported>,
    /// On the activity tick's list (see `activity.rs`).
    stirred: AtomicBool,
    /// Bytes of the output ring (finished sessions read older output from the transcript).
    ring_capacity: usize,
    /// Where the session's record is kept (see `record.rs`); `None` in tests of the engine alone.
    store: Option<Arc<crate::store::Store>>,
    /// The keeper that started the program (its parent) and holds its PTY; `None` for a
    /// session that ended before this server started, or whose parent died before this server
    /// started.
    keeper: Option<Arc<crate::keeper::Keeper>>,
    /// The keeper holding the PTY since its parent died (see `adopt.rs`).
    rehomed: Mutex<Option<Arc<crate::keeper::Keeper>>>,
    /// Where the marks of when output was read and of resizes go, for recordings.
    timeline: Option<Arc<crate::store::Timeline>>,
    /// The session's cgroup, when it has one (named by its id).
    cgroup: Option<super::cgroup::Membership>,
    /// The agent's state, when the session runs one (see `agent.rs`).
    agent: Option<Mutex<crate::agent::Tracker>>,
}

/// The part of a session that the reader changes, under one lock.
struct State {
    log: OutputLog,
    screen: Screen,
    size: TermSize,
    status: SessionStatus,
    exit: Option<ExitInfo>,
    ended_at: Option<SystemTime>,
    last_output_at: Option<SystemTime>,
    reader_done: bool,
    shared: shared_reads::SharedReads,
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
    /// The agent's state, when the session runs one.
    pub agent: Option<crate::agent::Agent>,
}

impl SessionSnapshot {
    /// Busy: the program has printed something within `window`.
    pub fn is_busy(&self, window: Duration) -> bool {
        self.last_output_at.is_some() && self.quiet_for < window
    }
}

impl Session {
    /// Locks the state; a panic elsewhere must not take the session down with it.
    fn lock_state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// A receiver that is woken after every change; see `viewer.rs`.
    fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Wakes viewers and waiters.
    fn publish(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
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
            task_delivered_at: *lock(&self.task_delivered_at),
            quiet_for: self.quiet_for(state.last_output_at),
            agent: self.agent(),
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

    /// Lets the screen model sleep when the program has printed nothing for `quiet` (a short
    /// history is replayed when next asked: see `screen/dormant.rs`), and drops what its viewers
    /// shared; whether the screen went to sleep now.
    pub(crate) fn doze_screen_if_quiet(&self, quiet: Duration) -> bool {
        let mut state = self.lock_state();
        if self.quiet_for(state.last_output_at) < quiet {
            return false;
        }
        state.shared = Default::default();
        state.screen.doze()
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

    /// Where the full output is kept on disk, and how many bytes it holds.
    pub fn transcript(&self) -> (PathBuf, u64) {
        let state = self.lock_state();
        (state.log.transcript_path().to_path_buf(), state.log.total())
    }

    /// How long the program has printed nothing, given when it last did.
    fn quiet_for(&self, last_output_at: Option<SystemTime>) -> Duration {
        SystemTime::now()
            .duration_since(last_output_at.unwrap_or(self.created_at))
            .unwrap_or_default()
    }

    /// The keeper that holds the PTY and reads it.
    fn holder(&self) -> Option<Arc<crate::keeper::Keeper>> {
        lock(&self.rehomed).clone().or_else(|| self.keeper.clone())
    }

    /// Counts an attached viewer for as long as the returned guard lives.
    fn viewer_guard(self: &Arc<Self>) -> ViewerCount {
        self.viewers.fetch_add(1, Ordering::Relaxed);
        ViewerCount(self.clone())
    }
}

/// Locks `mutex`; a panic elsewhere must not take the session down with it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Keeps a session's viewer count up while alive.
struct ViewerCount(Arc<Session>);

impl Drop for ViewerCount {
    fn drop(&mut self) {
        self.0.viewers.fetch_sub(1, Ordering::Relaxed);
    }
}
