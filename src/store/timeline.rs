//! When each part of a session's output was read, and when it was resized: what a recording
//! (asciicast) needs beyond the transcript. Marks are coalesced by their writers (at most one
//! output mark per `MARK_EVERY` per session, plus one when output pauses) and written by one
//! thread in batches, so neither a flood of output nor the database ever slows a reader; what the
//! last batch held when the server died is lost (the bytes are not: a recording then shows them
//! at the next mark's time).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use rusqlite::params;

use super::Store;

/// The shortest time between two output marks of one session.
pub const MARK_EVERY: Duration = Duration::from_millis(10);
/// Marks waiting to be written; more are dropped (and that is logged once).
const QUEUE: usize = 65_536;
/// How often waiting marks are written.
const BATCH_EVERY: Duration = Duration::from_millis(100);

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS marks (
    session TEXT NOT NULL,
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    offset INTEGER NOT NULL,
    at_us INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS marks_by_session ON marks (session, seq);
";

/// What happened at a point of a session's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkKind {
    /// The output up to `offset` had been read by `at_us`.
    Output,
    /// The terminal became `data` (`COLSxROWS`) after the output up to `offset`.
    Resize,
    /// `data` was typed into the program after the output up to `offset`.
    Input,
}

impl MarkKind {
    /// The asciicast event code, also the stored name.
    pub fn code(&self) -> &'static str {
        match self {
            MarkKind::Output => "o",
            MarkKind::Resize => "r",
            MarkKind::Input => "i",
        }
    }

    fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "o" => MarkKind::Output,
            "r" => MarkKind::Resize,
            "i" => MarkKind::Input,
            _ => return None,
        })
    }
}

/// One mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub kind: MarkKind,
    pub offset: u64,
    /// Microseconds since the Unix epoch.
    pub at_us: i64,
    pub data: String,
}

/// The writer of marks: cheap to push to from any thread; a thread of its own writes them.
pub struct Timeline {
    queue: SyncSender<Item>,
    dropped: std::sync::atomic::AtomicBool,
}

enum Item {
    Mark(String, Mark),
    /// Write what is queued now, then say so.
    Flush(std::sync::mpsc::Sender<()>),
}

impl Timeline {
    /// Starts the writer thread for `store`.
    pub fn start(store: Arc<Store>) -> std::io::Result<Self> {
        let (queue, marks) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("timeline".into())
            .spawn(move || write_loop(&store, &marks))?;
        Ok(Self {
            queue,
            dropped: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Writes every mark queued so far; returns once they are written (or after a second).
    /// Blocking.
    pub fn flush(&self) {
        let (done, written) = std::sync::mpsc::channel();
        if self.queue.send(Item::Flush(done)).is_ok() {
            let _ = written.recv_timeout(Duration::from_secs(1));
        }
    }

    /// Queues `mark` of session `id`; never blocks.
    pub fn push(&self, id: &str, mark: Mark) {
        if let Err(TrySendError::Full(_)) = self.queue.try_send(Item::Mark(id.to_owned(), mark))
            && !self
                .dropped
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!("recording marks are coming faster than they are written: some dropped");
        }
    }
}

fn write_loop(store: &Store, items: &Receiver<Item>) {
    while let Ok(first) = items.recv() {
        if matches!(first, Item::Mark(..)) {
            std::thread::sleep(BATCH_EVERY);
        }
        let mut batch = Vec::new();
        let mut flushed = Vec::new();
        for item in std::iter::once(first).chain(items.try_iter()) {
            match item {
                Item::Mark(id, mark) => batch.push((id, mark)),
                Item::Flush(done) => flushed.push(done),
            }
        }
        if !batch.is_empty()
            && let Err(err) = store.append_marks(&batch)
        {
            tracing::error!(%err, "cannot write recording marks");
        }
        for done in flushed {
            let _ = done.send(());
        }
    }
}

impl Store {
    /// Writes `marks` in one transaction.
    pub fn append_marks(&self, marks: &[(String, Mark)]) -> rusqlite::Result<()> {
        let mut db = self.lock();
        let tx = db.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO marks (session, kind, offset, at_us, data) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (id, mark) in marks {
                insert.execute(params![
                    id,
                    mark.kind.code(),
                    mark.offset as i64,
                    mark.at_us,
                    mark.data
                ])?;
            }
        }
        tx.commit()
    }

    /// Every mark of session `id`, in the order they were made.
    pub fn marks(&self, id: &str) -> rusqlite::Result<Vec<Mark>> {
        let db = self.lock();
        let mut query = db.prepare_cached(
            "SELECT kind, offset, at_us, data FROM marks WHERE session = ?1 ORDER BY seq",
        )?;
        let rows = query.query_map([id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, String>(3)?,
            ))
        })?;
        let mut marks = Vec::new();
        for row in rows {
            let (kind, offset, at_us, data) = row?;
            if let Some(kind) = MarkKind::from_code(&kind) {
                marks.push(Mark {
                    kind,
                    offset: offset.max(0) as u64,
                    at_us,
                    data,
                });
            }
        }
        Ok(marks)
    }
}
