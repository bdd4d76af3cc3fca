//! Checkpoints of the database's write-ahead log, on a connection and a thread of their own.
//!
//! SQLite copies the log into the database (and waits for the disk, twice) in whichever commit
//! finds the log over 1,000 pages. That commit held the store's lock meanwhile — measured here
//! at 5–100 ms when the disk was busy — and a session's start, which saves its record under
//! that lock, waited as long. The writers' connection has automatic checkpoints off; this
//! thread checkpoints beside them (a passive checkpoint never blocks a writer), so a commit is
//! only an append to the log.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::Connection;

/// How often the log is copied into the database.
const EVERY: Duration = Duration::from_millis(500);

/// Stops the checkpoint thread when dropped (with the store).
pub(super) struct Checkpoints {
    stop: Arc<AtomicBool>,
}

impl Checkpoints {
    /// Starts checkpointing the database at `path` (already in WAL mode).
    pub(super) fn start(path: &Path) -> rusqlite::Result<Self> {
        let db = Connection::open(path)?;
        db.busy_timeout(Duration::from_secs(5))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let started = std::thread::Builder::new()
            .name("checkpoints".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(EVERY);
                    if let Err(err) = db.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(%err, "cannot checkpoint the session database");
                    }
                }
            });
        if let Err(err) = started {
            tracing::error!(%err, "cannot start the checkpoint thread");
        }
        Ok(Self { stop })
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
