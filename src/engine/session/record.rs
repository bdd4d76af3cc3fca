//! A session's record in the store: written when it starts and when it ends (before the end
//! is visible to anyone), and read back by a restarted server, which shows the sessions that
//! ended before it as they were: same id, exit, screen and transcript.

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::super::events::EventBus;
use super::super::output::{self, OutputLog};
use super::super::screen::{Screen, TermSize};
use super::adopt::replay;
use super::input::InputQueue;
use super::reader::Timing;
use super::recent::FINISHED_TAIL_BYTES;
use super::{ExitInfo, Session, SessionStatus, State, activity, lifecycle};
use crate::store::{SessionRecord, Store};

/// Output replayed to draw the final screen of a session whose end was never recorded.
const REPLAYED_TAIL_BYTES: u64 = 256 * 1024;

impl Session {
    /// The session as the store keeps it; with the screen once the program has ended.
    pub(crate) fn record(&self) -> SessionRecord {
        let mut state = self.lock_state();
        let ended = state.exit.is_some();
        SessionRecord {
            id: self.id.clone(),
            kind: wire_name(&self.kind),
            task: self.task.clone(),
            argv: self.argv.clone(),
            cwd: self.cwd.clone(),
            name: self.name.clone(),
            owner: self.owner.clone(),
            labels: self.labels.clone(),
            requested_by: self.requested_by.clone(),
            record_input: self.record_input,
            created_at_ms: millis(self.created_at),
            pid: self.pid,
            cols: state.size.cols,
            rows: state.size.rows,
            status: wire_name(&state.status),
            exit_code: state.exit.as_ref().and_then(|e| e.code),
            signal: state.exit.as_ref().and_then(|e| e.signal.clone()),
            exit_reason: state
                .exit
                .as_ref()
                .and_then(|e| e.reason)
                .map(|r| wire_name(&r)),
            ended_at_ms: state.ended_at.map(millis),
            output_bytes: state.log.total(),
            output_lines: state.log.lines(),
            last_output_at_ms: state.last_output_at.map(millis),
            task_delivered_at_ms: super::lock(&self.task_delivered_at).map(millis),
            transcript: state.log.transcript_path().to_path_buf(),
            final_screen: ended.then(|| state.screen.saved()),
            agent: self
                .agent
                .as_ref()
                .and_then(|tracker| serde_json::to_string(&super::lock(tracker).record()).ok()),
        }
    }

    /// Writes the record to `store` (blocking); a failure is logged, the session goes on.
    pub(crate) fn save_record(&self, store: &Store) {
        if let Err(err) = store.save(&self.record()) {
            tracing::error!(session = %self.id, %err, "cannot save the session's record");
        }
    }

    /// The same off the async workers, returning once it is written.
    pub(super) async fn save_record_async(self: &Arc<Self>) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let session = self.clone();
        let _ = tokio::task::spawn_blocking(move || session.save_record(&store)).await;
    }

    /// A finished session from its record: nothing runs, nothing is held but its final screen
    /// and the last `FINISHED_TAIL_BYTES` of output (read from the transcript). A record whose
    /// end was never written (its server died first) ends now as `killed` with no exit status,
    /// its screen drawn from the transcript's tail. Blocking (reads the transcript).
    pub(crate) fn restore(
        mut record: SessionRecord,
        store: Arc<Store>,
        events: Arc<EventBus>,
    ) -> Option<Arc<Session>> {
        let kind = from_wire(&record.kind)?;
        let size = TermSize::new(record.cols, record.rows)?;
        let mut status = from_wire(&record.status)?;
        let ended_at = record.ended_at_ms.map(from_millis);
        let unrecorded_end = status == SessionStatus::Running || ended_at.is_none();
        if unrecorded_end {
            status = SessionStatus::Killed;
            // The record's counts are from its start; the transcript has the whole output.
            (record.output_bytes, record.output_lines) =
                output::count_transcript(&record.transcript).unwrap_or_default();
        }
        let total = record.output_bytes;
        let tail_from = total.saturating_sub(FINISHED_TAIL_BYTES as u64);
        let tail = output::read_transcript(&record.transcript, tail_from, (total - tail_from) as _)
            .unwrap_or_default();
        let screen = record
            .final_screen
            .as_deref()
            .filter(|_| !unrecorded_end)
            .and_then(Screen::from_saved)
            .unwrap_or_else(|| replayed_screen(&record, size));
        let session = Arc::new(Session {
            cgroup: None,
            id: record.id,
            kind,
            task: record.task,
            command_line: shell_words::join(&record.argv),
            argv: record.argv,
            cwd: record.cwd,
            name: record.name,
            owner: record.owner,
            labels: record.labels,
            created_at: from_millis(record.created_at_ms),
            pid: record.pid,
            requested_by: record.requested_by,
            record_input: record.record_input,
            state: Mutex::new(State {
                log: OutputLog::resumed(
                    record.transcript,
                    total,
                    record.output_lines,
                    &tail,
                    FINISHED_TAIL_BYTES,
                ),
                screen,
                size,
                status,
                exit: Some(ExitInfo {
                    code: record.exit_code,
                    signal: record.signal,
                    reason: record.exit_reason.as_deref().and_then(from_wire),
                }),
                ended_at: Some(ended_at.unwrap_or_else(SystemTime::now)),
                last_output_at: record.last_output_at_ms.map(from_millis),
                reader_done: true,
                shared: Default::default(),
            }),
            changed: watch::channel(0).0,
            events,
            input: InputQueue::closed(),
            answered: Mutex::default(),
            master: Mutex::new(None),
            processes: lifecycle::Processes::gone(),
            timing: Mutex::new(Timing::from(total)),
            viewers: AtomicUsize::new(0),
            typed_told: Default::default(),
            task_delivered_at: Mutex::new(record.task_delivered_at_ms.map(from_millis)),
            reported: Mutex::new(activity::Reported::up_to(total)),
            stirred: AtomicBool::new(false),
            listed_once: OnceLock::new(),
            ring_capacity: FINISHED_TAIL_BYTES,
            store: Some(store.clone()),
            keeper: None,
            rehomed: Mutex::new(None),
            agent: agent_tracker(record.agent.as_deref()).map(|mut tracker| {
                tracker.on_exit();
                Mutex::new(tracker)
            }),
            timeline: None,
        });
        if unrecorded_end {
            tracing::warn!(
                session = %session.id,
                "the server that ran this session stopped before its end was recorded: \
                 listed as killed, without an exit status"
            );
            session.save_record(&store);
        }
        Some(session)
    }
}

/// The tracker of the agent a record names, if any.
pub(super) fn agent_tracker(json: Option<&str>) -> Option<crate::agent::Tracker> {
    let record = serde_json::from_str(json?).ok()?;
    Some(crate::agent::Tracker::restore(record))
}

/// The screen drawn from the last `REPLAYED_TAIL_BYTES` of the transcript at the recorded size
/// (exact unless the program resized or drew before that tail).
fn replayed_screen(record: &SessionRecord, size: TermSize) -> Screen {
    let total = record.output_bytes;
    let from = total.saturating_sub(REPLAYED_TAIL_BYTES);
    let mut screen = replay(&record.transcript, from, total, &[], size)
        .map_or_else(|_| Screen::new(size), |(screen, _)| screen);
    screen.finish();
    screen
}

/// `value`'s name on the wire (its serde name), as the store keeps enumerations.
fn wire_name(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

pub(super) fn from_wire<T: DeserializeOwned>(name: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}

fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub(super) fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}
