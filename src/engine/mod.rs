//! The session engine: programs in real PTYs, their output logs, screens and transcripts.
//!
//! It knows nothing of HTTP. The API layer calls `Engine::spawn`, looks sessions up, and reads
//! them through `Session`'s methods and `Viewer`s.

mod answers;
mod backlog;
mod child;
mod events;
mod keys;
mod output;
mod plain;
mod process;
mod screen;
mod session;
mod viewer;
mod wait;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use dashmap::DashMap;

pub use events::{ACTIVITY_TICK, EVENT_RING_CAPACITY, Event, EventBus, EventKind, Missed};
pub use keys::{Key, SPECIAL_KEY_NAMES, parse_key, paste_bytes};
pub use output::RING_BYTES_PER_LINE;
pub use plain::{plain_text, plain_text_tail, skip_partial_char};
pub use screen::{MAX_DIMENSION, SCREEN_SCROLLBACK_ROWS, Screen, ScreenText, TermSize};
pub use session::{
    DUPLICATE_ANSWER_WINDOW, ExitInfo, NotRunning, ReplyFilter, Session, SessionKind,
    SessionSnapshot, SessionStatus, SpawnError, SpawnSpec,
};
pub use viewer::{AttachFrom, AttachStart, MAX_OUTPUT_CHUNK, Viewer, ViewerEvent};
pub use wait::{Fired, WaitFor, WaitOutcome};

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
}

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

/// All sessions of this server.
pub struct Engine {
    config: EngineConfig,
    sessions: DashMap<String, Arc<Session>>,
    /// What happens in the sessions, for `/events`.
    pub events: EventBus,
    /// Makes "count running sessions, then add one" atomic.
    spawn_gate: Mutex<()>,
}

impl Engine {
    /// Creates the engine and its data directory (mode 0700: transcripts hold secrets too).
    pub fn new(config: EngineConfig) -> std::io::Result<Self> {
        create_private_dir(&config.data_dir.join("transcripts"))?;
        Ok(Self {
            config,
            sessions: DashMap::new(),
            events: EventBus::default(),
            spawn_gate: Mutex::new(()),
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Starts a session. Blocking (fork + exec): call it off the async runtime.
    pub fn spawn(&self, spec: SpawnSpec) -> Result<Arc<Session>, EngineError> {
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
            .join("transcripts")
            .join(format!("{id}.log"));
        let ring = self.config.output_buffer_lines.max(1) * RING_BYTES_PER_LINE;
        let session = Session::spawn(id.clone(), spec, transcript, ring, &self.config.env_remove)
            .map_err(EngineError::Spawn)?;
        self.sessions.insert(id.clone(), session.clone());
        self.events.publish(&id, EventKind::Created);
        Ok(session)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions.get(id).map(|s| s.clone())
    }

    /// Every session, oldest first.
    pub fn list(&self) -> Vec<Arc<Session>> {
        let mut all: Vec<_> = self.sessions.iter().map(|s| s.clone()).collect();
        all.sort_by_key(|s| s.created_at);
        all
    }

    pub fn running_count(&self) -> usize {
        self.sessions
            .iter()
            .filter(|s| s.status() == SessionStatus::Running)
            .count()
    }

    /// Kills a session's process tree (see `Session::kill`) with the configured grace.
    pub async fn kill(&self, session: &Session) {
        session.kill(self.config.kill_grace).await;
    }

    /// How long a session's record is kept after it ended.
    pub fn ttl(&self, kind: SessionKind) -> Duration {
        match kind {
            SessionKind::Interactive => self.config.interactive_ttl,
            SessionKind::Exec | SessionKind::Print => self.config.session_ttl,
        }
    }

    /// Removes sessions whose TTL since their end has passed, with their transcripts.
    pub fn purge_expired(&self) {
        let now = SystemTime::now();
        let expired: Vec<Arc<Session>> = self
            .sessions
            .iter()
            .filter(|s| {
                s.ended_at()
                    .and_then(|end| now.duration_since(end).ok())
                    .is_some_and(|age| age >= self.ttl(s.kind))
            })
            .map(|s| s.clone())
            .collect();
        for session in expired {
            self.sessions.remove(&session.id);
            session.stop_reading();
            let (path, _) = session.transcript();
            if let Err(err) = std::fs::remove_file(&path)
                && err.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(%err, path = %path.display(), "cannot remove transcript");
            }
            self.events.publish(&session.id, EventKind::Removed);
            tracing::info!(session = %session.id, "session expired and removed");
        }
    }

    /// Runs `purge_expired` periodically until the returned task is dropped or aborted.
    pub fn start_purger(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let engine = Arc::downgrade(self);
        let shortest = self.config.session_ttl.min(self.config.interactive_ttl);
        let period = (shortest / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(engine) = engine.upgrade() else {
                    break;
                };
                engine.purge_expired();
            }
        })
    }

    /// Publishes what changed in every session every `ACTIVITY_TICK` (output, busy/idle, title,
    /// bell, resize, exit), until the returned task is aborted or the engine dropped.
    pub fn start_activity_monitor(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let engine = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut reported = events::ReportedSessions::new();
            let mut tick = tokio::time::interval(ACTIVITY_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(engine) = engine.upgrade() else {
                    break;
                };
                let sessions = engine.list();
                reported.retain(|id, _| engine.sessions.contains_key(id));
                for session in &sessions {
                    let entry = reported.entry(session.id.clone()).or_default();
                    engine
                        .events
                        .report_changes(session, entry, engine.config.busy_window);
                }
            }
        })
    }

    /// Kills every running session (all at once, each with the kill grace) and stops all readers,
    /// which flushes the transcripts.
    pub async fn shutdown(&self) {
        let sessions = self.list();
        let kills = sessions
            .iter()
            .filter(|s| s.status() == SessionStatus::Running)
            .map(|s| self.kill(s));
        futures_util::future::join_all(kills).await;
        for session in &sessions {
            session.stop_reading();
        }
    }
}

/// A random, unguessable, URL-safe id (128 bits).
fn new_session_id() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}
