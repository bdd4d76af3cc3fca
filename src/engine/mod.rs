//! The session engine: programs in real PTYs (started and held by the keeper), their output
//! logs, screens, transcripts and records (in the store), across restarts of the server.
//!
//! It knows nothing of HTTP. The API layer calls `Engine::spawn`, looks sessions up, and reads
//! them through `Session`'s methods and `Viewer`s.

mod answers;
mod backlog;
pub mod cgroup;
pub mod data_dir;
mod events;
pub mod keys;
pub mod output;
mod plain;
mod process;
mod purger;
pub mod recording;
mod restart;
mod screen;
mod session;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use dashmap::DashMap;

use crate::agent;
use crate::keeper::Keeper;
use crate::store::{Mark, MarkKind, Store, Timeline};

pub use events::{ACTIVITY_TICK, EVENT_RING_CAPACITY, Event, EventBus, EventKind, Missed};
pub use keys::{Key, SPECIAL_KEY_NAMES, parse_key, paste_bytes};
pub use output::RING_BYTES_PER_LINE;
pub use plain::{plain_text, plain_text_tail, skip_partial_char};
pub use process::ResourceUse;
pub use purger::Purger;
use restart::EarlierRuns;
pub use screen::{
    MAX_DIMENSION, MAX_ESCAPE_STRING, MAX_TITLE_CHANGES, SCREEN_SCROLLBACK_ROWS, Screen,
    ScreenText, TermSize,
};
use session::Serving;
pub use session::{
    AnswerError, AttachFrom, AttachStart, DUPLICATE_ANSWER_WINDOW, ExitInfo, ExitReason,
    FINISHED_TAIL_BYTES, Fired, InputError, MAX_OUTPUT_CHUNK, MAX_PATTERN_BYTES,
    MAX_QUEUED_ANSWER_BYTES, MAX_QUEUED_INPUT_BYTES, ReplyFilter, Session, SessionKind,
    SessionSnapshot, SessionStatus, SpawnError, SpawnSpec, Viewer, ViewerEvent, WaitFor,
    WaitOutcome,
};

/// The engine's settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where transcripts are written (in `transcripts/` below it).
    pub data_dir: PathBuf,
    /// Most sessions running at once.
    pub max_sessions: usize,
    /// Lines of recent output kept in memory per session (see `RING_BYTES_PER_LINE`).
    pub output_buffer_lines: usize,
    /// How long a finished session's record and transcript stay.
    pub session_ttl: Duration,
    /// The same for interactive sessions.
    pub interactive_ttl: Duration,
    /// Time between SIGTERM and SIGKILL when killing.
    pub kill_grace: Duration,
    /// Variables of the server's own environment that children must not see (its secrets).
    pub env_remove: Vec<String>,
    /// A session with output this recently is busy.
    pub busy_window: Duration,
    /// Finished sessions kept at most; beyond it the oldest are removed before their TTL.
    pub max_finished: usize,
    /// Each session gets a cgroup with these limits unless its request says otherwise; `None`
    /// turns cgroups off.
    pub default_limits: Option<cgroup::Limits>,
}

/// Descriptors one session holds in the server: the PTY master (for input and resizes; the
/// keeper reads it and writes the transcript). What the server must keep free per
/// `MAX_SESSIONS`.
pub const FDS_PER_SESSION: usize = 1;

/// Why a spawn was refused.
#[derive(Debug)]
pub enum EngineError {
    /// `max` sessions are running already.
    TooManySessions {
        max: usize,
        running: usize,
    },
    Spawn(SpawnError),
}

/// How long a stop waits for the ends being recorded (see `Engine::detach`).
const END_RECORD_WAIT: Duration = Duration::from_secs(2);
/// How long a stop that kills waits for the last killed processes to leave their cgroups, so
/// that it can remove them (SIGKILL takes effect in milliseconds).
const CGROUPS_GONE_WAIT: Duration = Duration::from_secs(1);

/// All sessions of this server.
pub struct Engine {
    config: EngineConfig,
    sessions: DashMap<String, Arc<Session>>,
    /// What happens in the sessions, for `/events`.
    pub events: Arc<EventBus>,
    /// Makes "count running sessions, then add one" atomic.
    spawn_gate: Mutex<()>,
    /// The sessions' records, which outlive this server.
    store: Arc<Store>,
    /// The process that starts the programs and holds their PTYs (see `keeper`).
    keeper: Mutex<Option<Arc<Keeper>>>,
    /// When output was read and sessions resized, for recordings.
    timeline: Arc<Timeline>,
    /// Where sessions get their cgroups, when this server may make them.
    cgroups: Option<Arc<cgroup::Cgroups>>,
    /// How many sessions may hold processes: counted by the sessions themselves (see
    /// `session/lifecycle.rs`), so that a spawn does not visit 10,000 sessions to check
    /// `MAX_SESSIONS`.
    holding: Arc<AtomicUsize>,
}

impl Engine {
    /// Creates the engine and its data directory (mode 0700: transcripts hold secrets too);
    /// refuses a data directory that is not the server's user's alone (see `data_dir`) or that
    /// another server uses. Sessions recorded by an earlier server are listed again (see
    /// `Session::restore`). Blocking: it reads the database and transcripts.
    pub fn new(config: EngineConfig) -> Result<Self, String> {
        data_dir::prepare(&config.data_dir)?;
        let store = Arc::new(Store::open(&config.data_dir)?);
        let timeline = Arc::new(
            Timeline::start(store.clone()).map_err(|e| format!("cannot start a thread: {e}"))?,
        );
        let events = Arc::new(EventBus::default());
        let cgroups = config.default_limits.and_then(|defaults| {
            cgroup::Cgroups::set_up(defaults, &config.data_dir)
                .inspect(|cgroups| {
                    tracing::info!(
                        version = cgroups.version(),
                        ?defaults,
                        "sessions get cgroups"
                    )
                })
                .inspect_err(|why| {
                    tracing::warn!(
                        "sessions run without cgroups (no memory, pids or CPU limits): {why}"
                    )
                })
                .ok()
                .map(Arc::new)
        });
        let holding = Arc::new(AtomicUsize::new(0));
        let earlier =
            EarlierRuns::take_over(&config, &store, &events, &timeline, &cgroups, &holding)?;
        let sessions = earlier.sessions;
        let keeper = earlier.keeper;
        Ok(Self {
            config,
            sessions,
            events,
            spawn_gate: Mutex::new(()),
            store,
            keeper: Mutex::new(keeper),
            timeline,
            cgroups,
            holding,
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Starts a session. Blocking (it starts a process): call it off the async workers.
    pub fn spawn(&self, mut spec: SpawnSpec) -> Result<Arc<Session>, EngineError> {
        let _gate = self.spawn_gate.lock().unwrap_or_else(|p| p.into_inner());
        let running = self.running_count();
        if running >= self.config.max_sessions {
            return Err(EngineError::TooManySessions {
                max: self.config.max_sessions,
                running,
            });
        }
        let id = new_session_id();
        let transcript = self
            .config
            .data_dir
            .join(data_dir::TRANSCRIPTS)
            .join(format!("{id}.log"));
        let keeper = self.keeper().map_err(EngineError::Spawn)?;
        spec.env.push((agent::SESSION_ID_VAR.into(), id.clone()));
        let tracker = spec.agent.take().map(|agent| {
            // The agent's hooks prove with it that their reports are this session's.
            let secret = new_session_id();
            let socket = self.config.data_dir.join(agent::channel::SOCKET);
            spec.env
                .push((agent::HOOK_SECRET_VAR.into(), secret.clone()));
            spec.env.push((
                agent::HOOK_SOCKET_VAR.into(),
                socket.to_string_lossy().into_owned(),
            ));
            agent::Tracker::new(agent, secret)
        });
        let (session, start) = Session::spawn(
            id.clone(),
            spec,
            transcript,
            &self.config.env_remove,
            tracker,
            self.serving(keeper),
        )
        .map_err(EngineError::Spawn)?;
        session.save_record(&self.store);
        // The recording's first size.
        let size = recording::size_text(session.snapshot().size);
        session.mark(MarkKind::Resize, 0, session.created_at, size);
        self.sessions.insert(id.clone(), session.clone());
        // Announced before anything the session does can be reported.
        self.events.publish(&id, EventKind::Created);
        start.serve();
        Ok(session)
    }

    /// The keeper, connected (or started) on first use and again if it was lost.
    fn keeper(&self) -> Result<Arc<Keeper>, SpawnError> {
        let mut keeper = self.keeper.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(keeper) = keeper.as_ref().filter(|k| !k.is_lost()) {
            return Ok(keeper.clone());
        }
        let connected = Arc::new(
            Keeper::connect_or_start(&self.config.data_dir).map_err(SpawnError::Internal)?,
        );
        *keeper = Some(connected.clone());
        Ok(connected)
    }

    fn serving(&self, keeper: Arc<Keeper>) -> Serving {
        Serving {
            ring_capacity: self.config.output_buffer_lines.max(1) * RING_BYTES_PER_LINE,
            events: self.events.clone(),
            store: self.store.clone(),
            keeper,
            timeline: self.timeline.clone(),
            cgroups: self.cgroups.clone(),
            holding: self.holding.clone(),
        }
    }

    /// The marks of session `id`'s recording (see `recording.rs`). Blocking.
    pub fn marks(&self, id: &str) -> Vec<Mark> {
        self.store.marks(id).unwrap_or_else(|err| {
            tracing::error!(session = %id, %err, "cannot read the recording's marks");
            Vec::new()
        })
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions.get(id).map(|s| s.clone())
    }

    /// Every session, oldest first.
    pub fn list(&self) -> Vec<Arc<Session>> {
        // Sorted by keys read once each (comparing through the pointers was 4% of a list of
        // 10,000, in cache misses).
        let mut all: Vec<_> = self
            .sessions
            .iter()
            .map(|s| (s.created_at, s.clone()))
            .collect();
        all.sort_unstable_by_key(|(created, _)| *created);
        all.into_iter().map(|(_, s)| s).collect()
    }

    /// Sessions that may still have live processes: running ones, and finished ones whose
    /// background jobs live on. `MAX_SESSIONS` bounds these.
    pub fn running_count(&self) -> usize {
        self.holding.load(Ordering::Relaxed)
    }

    /// Kills a session's process tree (see `Session::kill`) with the configured grace.
    pub async fn kill(&self, session: &Arc<Session>) {
        session.kill(self.config.kill_grace).await;
    }

    /// How long a session's record is kept after it ended.
    pub fn ttl(&self, kind: SessionKind) -> Duration {
        match kind {
            SessionKind::Interactive => self.config.interactive_ttl,
            SessionKind::Exec | SessionKind::Print => self.config.session_ttl,
        }
    }

    /// Finished sessions whose TTL since their end has passed, and the oldest finished ones
    /// beyond `max_finished`.
    fn expired(&self) -> Vec<Arc<Session>> {
        let now = SystemTime::now();
        let mut finished: Vec<(SystemTime, Arc<Session>)> = self
            .sessions
            .iter()
            .filter_map(|s| Some((s.ended_at()?, s.clone())))
            .collect();
        finished.sort_by_key(|(ended, _)| *ended);
        let over = finished.len().saturating_sub(self.config.max_finished);
        finished
            .into_iter()
            .enumerate()
            .filter(|(i, (ended, session))| {
                *i < over
                    || now
                        .duration_since(*ended)
                        .is_ok_and(|age| age >= self.ttl(session.kind))
            })
            .map(|(_, (_, session))| session)
            .collect()
    }

    /// Forgets the finished `session` now, as its expiry would: a person's "remove". False
    /// (and nothing done) while its program runs. Blocking.
    pub fn forget(&self, session: &Session) -> bool {
        if session.ended_at().is_none() {
            return false;
        }
        self.remove(session, "removed on request");
        true
    }

    fn remove(&self, session: &Session, why: &'static str) {
        if self.sessions.remove(&session.id).is_none() {
            return; // removed meanwhile
        }
        session.stop_reading();
        if let Err(err) = self.store.remove(&session.id) {
            tracing::error!(session = %session.id, %err, "cannot remove the session's record");
        }
        let (path, _) = session.transcript();
        if let Err(err) = std::fs::remove_file(&path)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(%err, path = %path.display(), "cannot remove transcript");
        }
        self.events.publish(&session.id, EventKind::Removed);
        tracing::info!(session = %session.id, why, "session removed");
    }

    /// Finished sessions whose background jobs may still run.
    fn lingering(&self) -> Vec<Arc<Session>> {
        self.sessions
            .iter()
            .filter(|s| s.lingers())
            .map(|s| s.clone())
            .collect()
    }

    /// Reaps those of `lingering` whose last background job has ended, freeing their slot (one
    /// `/proc` scan for all of them). Blocking.
    fn reap_lingering(lingering: &[Arc<Session>]) {
        let live = process::Scan::now().live_session_ids();
        for session in lingering {
            session.reap_when(|sid| !live.contains(&sid));
        }
    }

    /// Listens for the agents' hook reports (`DATA_DIR/hooks.sock`) and hands each to its
    /// session, for as long as the engine lives.
    pub fn start_hook_channel(self: &Arc<Self>) -> Result<(), String> {
        let engine = Arc::downgrade(self);
        agent::channel::listen(&self.config.data_dir, move |report| {
            let Some(engine) = engine.upgrade() else {
                return false;
            };
            if let Some(session) = engine.get(&report.session)
                && !session.agent_report(&report)
            {
                tracing::warn!(session = %report.session, "a hook report with a wrong secret");
            }
            true
        })
        .map(|_| ())
    }

    /// Hands the PTYs of `sessions`, whose keeper died, to a new keeper. Blocking.
    fn rehome(&self, sessions: &[Arc<Session>]) {
        match self.keeper() {
            Ok(keeper) => {
                for session in sessions {
                    session.rehome(keeper.clone());
                }
            }
            Err(err) => tracing::error!(?err, "cannot start a new keeper; will try again"),
        }
    }

    /// Starts the housekeeping (see `purger.rs`): finished sessions expire, lingering ones are
    /// reaped, sessions whose keeper died get a new one, quiet screens sleep; until the
    /// returned `Purger` is dropped. Called on the runtime.
    pub fn start_purger(self: &Arc<Self>) -> Purger {
        let shortest = self.config.session_ttl.min(self.config.interactive_ttl);
        // At most a second: lingering sessions are reaped on the same round.
        let period = (shortest / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        purger::start(
            Arc::downgrade(self),
            period,
            tokio::runtime::Handle::current(),
        )
    }

    /// Publishes each session's new output and busy/idle changes every `ACTIVITY_TICK` (what
    /// happens at a moment — title, bell, resize, exit — is published where it happens), until
    /// the returned task is aborted or the engine dropped.
    pub fn start_activity_monitor(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let engine = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ACTIVITY_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(engine) = engine.upgrade() else {
                    break;
                };
                for id in engine.events.take_stirring() {
                    if let Some(session) = engine.get(&id) {
                        session.tick(engine.config.busy_window);
                    }
                }
            }
        })
    }

    /// The end of a stop that kills: SIGKILLs what is left of every session whose kill did not
    /// finish in time (one scan of `/proc` for all), and hands each to the keeper to reap once
    /// its program has ended. No server will take them over, so the keeper must not keep them
    /// (it exits once it holds nothing). Then removes the sessions' cgroups and the data
    /// directory's, once the processes are gone (a dead process leaves its cgroup before it is
    /// reaped). Blocking.
    pub fn kill_rest(&self) {
        let sessions = self.list();
        if sessions.iter().any(|s| s.holds_processes()) {
            let scan = process::Scan::now();
            for session in sessions {
                session.kill_now_and_abandon(&scan);
            }
        }
        if self.cgroups.is_some() {
            cgroup::remove_all_of(&self.config.data_dir, CGROUPS_GONE_WAIT);
        }
    }

    /// Lets go of every session without ending any: readers stop after the read in hand (so each
    /// byte read is in its transcript, and the next server reads on from there), and the
    /// programs run on, held by the keeper. Returns how many sessions keep running.
    pub async fn detach(&self) -> usize {
        let sessions = self.list();
        self.stop_readers(&sessions).await;
        // A program reaped just now is no longer the keeper's: its end must reach the store
        // before this server goes (a moment: the record is all that is left to write).
        let deadline = Instant::now() + END_RECORD_WAIT;
        while sessions.iter().any(|s| s.end_unrecorded()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sessions.iter().filter(|s| s.holds_processes()).count()
    }

    /// Kills every session that may still have processes — running ones, and finished ones
    /// whose background jobs live on — all at once, each with the kill grace, and stops all
    /// readers, which flushes the transcripts.
    pub async fn shutdown(&self) {
        let sessions = self.list();
        let kills = sessions
            .iter()
            .filter(|s| s.holds_processes())
            .map(|s| self.kill(s));
        futures_util::future::join_all(kills).await;
        self.stop_readers(&sessions).await;
    }

    /// Stops the readers of `sessions` after the read in hand (at most a second each) and
    /// writes the recording marks they left.
    async fn stop_readers(&self, sessions: &[Arc<Session>]) {
        for session in sessions {
            session.stop_reading();
        }
        for session in sessions {
            session.reader_done_within(Duration::from_secs(1)).await;
        }
        let timeline = self.timeline.clone();
        let _ = tokio::task::spawn_blocking(move || timeline.flush()).await;
    }
}

/// A random, unguessable, URL-safe id (128 bits).
fn new_session_id() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}
