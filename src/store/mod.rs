//! What the server keeps on disk besides transcripts: the record of every session, in an
//! embedded SQLite database in the data directory, so that a restarted server still lists the
//! sessions that ended before it, with their exit codes, screens and transcripts, and still
//! expires them on time.
//!
//! Every call is blocking (a write is one small transaction): call it from blocking code, never
//! on the async workers. The store also holds the data directory's instance lock (`lock.rs`):
//! two servers on one data directory would overwrite each other's records.

mod checkpoint;
pub mod lock;
mod timeline;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

pub use lock::InstanceLock;
pub use timeline::{MARK_EVERY, Mark, MarkKind, Timeline};

/// The database file, below the data directory.
pub const DATABASE: &str = "sessions.db";

/// The schema version this build writes (`PRAGMA user_version`). 2 added `agent`, 3 `name`,
/// 4 `exit_reason`.
const SCHEMA_VERSION: i64 = 4;

/// What each version added: the statement taking version N (from 1) to N + 1.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize - 1] = [
    "ALTER TABLE sessions ADD COLUMN agent TEXT",
    "ALTER TABLE sessions ADD COLUMN name TEXT",
    "ALTER TABLE sessions ADD COLUMN exit_reason TEXT",
];

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    task TEXT NOT NULL,
    argv TEXT NOT NULL,
    cwd TEXT NOT NULL,
    owner TEXT,
    labels TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    record_input INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    cols INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    status TEXT NOT NULL,
    exit_code INTEGER,
    signal TEXT,
    ended_at_ms INTEGER,
    output_bytes INTEGER NOT NULL,
    output_lines INTEGER NOT NULL,
    last_output_at_ms INTEGER,
    task_delivered_at_ms INTEGER,
    transcript TEXT NOT NULL,
    final_screen BLOB,
    agent TEXT,
    name TEXT,
    exit_reason TEXT
);
";

/// One session as stored: everything its `SessionInfo` needs once no program runs any more.
/// Enumerations are stored by their wire names; times as milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: String,
    pub kind: String,
    pub task: String,
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub owner: Option<String>,
    pub labels: Vec<String>,
    pub requested_by: String,
    pub record_input: bool,
    pub created_at_ms: i64,
    pub pid: u32,
    pub cols: u16,
    pub rows: u16,
    pub status: String,
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
    pub ended_at_ms: Option<i64>,
    pub output_bytes: u64,
    pub output_lines: u64,
    pub last_output_at_ms: Option<i64>,
    pub task_delivered_at_ms: Option<i64>,
    pub transcript: PathBuf,
    /// The screen as it was last saved (see `Screen::saved`), once the program has ended.
    pub final_screen: Option<Vec<u8>>,
    /// The agent it runs, as JSON (`agent::tracker::AgentRecord`).
    pub agent: Option<String>,
    /// The name given at start.
    pub name: Option<String>,
    /// Why the program ended, beyond its status (`ExitReason`'s wire name).
    pub exit_reason: Option<String>,
}

/// The session database of one data directory, held by this server alone.
pub struct Store {
    db: Mutex<Connection>,
    path: PathBuf,
    _checkpoints: checkpoint::Checkpoints,
    _lock: InstanceLock,
}

impl Store {
    /// Takes the data directory's instance lock, then opens (creating if missing) its database.
    /// `Err` is a message for the person starting the server.
    pub fn open(data_dir: &Path) -> Result<Self, String> {
        let lock = InstanceLock::take(data_dir)?;
        let path = data_dir.join(DATABASE);
        let cannot = |e: &dyn std::fmt::Display| {
            format!("cannot open the session database {}: {e}", path.display())
        };
        // Never through a symlink someone slipped in: the records would go where they point.
        if let Ok(meta) = std::fs::symlink_metadata(&path)
            && !meta.is_file()
        {
            return Err(cannot(&"it is not a regular file"));
        }
        let db = Connection::open(&path).map_err(|e| cannot(&e))?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
        db.pragma_update(None, "journal_mode", "WAL")
            .and_then(|()| db.pragma_update(None, "synchronous", "NORMAL"))
            // The log is copied into the database by `checkpoint.rs`, outside this lock.
            .and_then(|()| db.pragma_update(None, "wal_autocheckpoint", 0))
            .and_then(|()| db.busy_timeout(std::time::Duration::from_secs(5)))
            .map_err(|e| cannot(&e))?;
        let version: i64 = db
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|e| cannot(&e))?;
        if version > SCHEMA_VERSION {
            return Err(cannot(&format!(
                "it was written by a newer monkeyproof (schema {version}, this one knows \
                 {SCHEMA_VERSION})"
            )));
        }
        // A new database (version 0) is created whole by SCHEMA; an older one takes the steps
        // from its version on.
        let steps = match version {
            1..SCHEMA_VERSION => &MIGRATIONS[version as usize - 1..],
            _ => &[],
        };
        db.execute_batch(SCHEMA)
            .and_then(|()| steps.iter().try_for_each(|step| db.execute_batch(step)))
            .and_then(|()| db.execute_batch(timeline::SCHEMA))
            .and_then(|()| db.pragma_update(None, "user_version", SCHEMA_VERSION))
            .map_err(|e| cannot(&e))?;
        let checkpoints = checkpoint::Checkpoints::start(&path).map_err(|e| cannot(&e))?;
        Ok(Self {
            db: Mutex::new(db),
            path,
            _checkpoints: checkpoints,
            _lock: lock,
        })
    }

    /// Where the database is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `record`, replacing the one with its id. Returns once it is committed.
    pub fn save(&self, record: &SessionRecord) -> rusqlite::Result<()> {
        let db = self.lock();
        db.prepare_cached(
            "INSERT OR REPLACE INTO sessions (id, kind, task, argv, cwd, owner, labels,
                requested_by, created_at_ms, pid, cols, rows, status, exit_code, signal,
                ended_at_ms, output_bytes, output_lines, last_output_at_ms,
                task_delivered_at_ms, transcript, final_screen, record_input, agent, name,
                exit_reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)",
        )?
        .execute(params![
            record.id,
            record.kind,
            record.task,
            to_json(&record.argv),
            record.cwd.to_string_lossy(),
            record.owner,
            to_json(&record.labels),
            record.requested_by,
            record.created_at_ms,
            record.pid,
            record.cols,
            record.rows,
            record.status,
            record.exit_code,
            record.signal,
            record.ended_at_ms,
            record.output_bytes as i64,
            record.output_lines as i64,
            record.last_output_at_ms,
            record.task_delivered_at_ms,
            record.transcript.to_string_lossy(),
            record.final_screen,
            record.record_input,
            record.agent,
            record.name,
            record.exit_reason,
        ])?;
        Ok(())
    }

    /// Forgets the session `id`, its marks too.
    pub fn remove(&self, id: &str) -> rusqlite::Result<()> {
        let db = self.lock();
        db.prepare_cached("DELETE FROM sessions WHERE id = ?1")?
            .execute([id])?;
        db.prepare_cached("DELETE FROM marks WHERE session = ?1")?
            .execute([id])?;
        Ok(())
    }

    /// The record of session `id`, if there is one.
    pub fn get(&self, id: &str) -> rusqlite::Result<Option<SessionRecord>> {
        self.lock()
            .prepare_cached(&format!("SELECT {COLUMNS} FROM sessions WHERE id = ?1"))?
            .query_row([id], from_row)
            .optional()
    }

    /// Every record, oldest first.
    pub fn load(&self) -> rusqlite::Result<Vec<SessionRecord>> {
        let db = self.lock();
        let mut query = db.prepare(&format!(
            "SELECT {COLUMNS} FROM sessions ORDER BY created_at_ms"
        ))?;
        query.query_map([], from_row)?.collect()
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }
}

const COLUMNS: &str = "id, kind, task, argv, cwd, owner, labels, requested_by, created_at_ms, pid,
    cols, rows, status, exit_code, signal, ended_at_ms, output_bytes, output_lines,
    last_output_at_ms, task_delivered_at_ms, transcript, final_screen, record_input, agent, name,
    exit_reason";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id: row.get(0)?,
        kind: row.get(1)?,
        task: row.get(2)?,
        argv: from_json(&row.get::<_, String>(3)?),
        cwd: PathBuf::from(row.get::<_, String>(4)?),
        owner: row.get(5)?,
        labels: from_json(&row.get::<_, String>(6)?),
        requested_by: row.get(7)?,
        created_at_ms: row.get(8)?,
        pid: row.get(9)?,
        cols: row.get(10)?,
        rows: row.get(11)?,
        status: row.get(12)?,
        exit_code: row.get(13)?,
        signal: row.get(14)?,
        ended_at_ms: row.get(15)?,
        output_bytes: row.get::<_, i64>(16)?.max(0) as u64,
        output_lines: row.get::<_, i64>(17)?.max(0) as u64,
        last_output_at_ms: row.get(18)?,
        task_delivered_at_ms: row.get(19)?,
        transcript: PathBuf::from(row.get::<_, String>(20)?),
        final_screen: row.get(21)?,
        record_input: row.get(22)?,
        agent: row.get(23)?,
        name: row.get(24)?,
        exit_reason: row.get(25)?,
    })
}

fn to_json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

fn from_json(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> SessionRecord {
        SessionRecord {
            id: id.into(),
            kind: "exec".into(),
            task: "echo hi".into(),
            argv: vec!["/bin/sh".into(), "-lc".into(), "echo hi".into()],
            cwd: "/tmp".into(),
            owner: Some("me".into()),
            labels: vec!["a".into(), "b".into()],
            requested_by: "127.0.0.1:1".into(),
            record_input: false,
            created_at_ms: 1_700_000_000_000,
            pid: 42,
            cols: 80,
            rows: 24,
            status: "running".into(),
            exit_code: None,
            signal: None,
            ended_at_ms: None,
            output_bytes: 0,
            output_lines: 0,
            last_output_at_ms: None,
            task_delivered_at_ms: Some(1_700_000_000_001),
            transcript: "/tmp/t.log".into(),
            final_screen: None,
            agent: None,
            name: Some("build".into()),
            exit_reason: Some("outOfMemory".into()),
        }
    }

    #[test]
    fn older_databases_gain_the_new_columns_and_keep_their_records() {
        // Version 1 had neither `agent` nor `name`; version 2 had `agent`, 3 `name` too.
        for (version, schema, agent) in [
            (
                1,
                SCHEMA.replace(
                    ",\n    agent TEXT,\n    name TEXT,\n    exit_reason TEXT",
                    "",
                ),
                "",
            ),
            (
                2,
                SCHEMA.replace(",\n    name TEXT,\n    exit_reason TEXT", ""),
                ", NULL",
            ),
            (
                3,
                SCHEMA.replace(",\n    exit_reason TEXT", ""),
                ", NULL, NULL",
            ),
        ] {
            let dir = std::env::temp_dir().join(format!("mp-store-{}", rand::random::<u64>()));
            std::fs::create_dir_all(&dir).unwrap();
            {
                let db = Connection::open(dir.join(DATABASE)).unwrap();
                db.execute_batch(&schema).unwrap();
                db.execute_batch(&format!(
                    "INSERT INTO sessions VALUES ('old', 'exec', 't', '[]', '/', NULL, '[]', 'x', \
                     0, 1, 2, 80, 24, 'exited', 0, NULL, 3, 0, 0, NULL, NULL, '/t.log', NULL\
                     {agent})"
                ))
                .unwrap();
                db.pragma_update(None, "user_version", version).unwrap();
            }
            let store = Store::open(&dir).unwrap();
            let old = store.get("old").unwrap().unwrap();
            assert_eq!(
                (old.status.as_str(), old.agent, old.name, old.exit_reason),
                ("exited", None, None, None),
                "from version {version}"
            );
            let mut new = record("new");
            new.agent = Some("{}".into());
            store.save(&new).unwrap();
            assert_eq!(store.get("new").unwrap(), Some(new));
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn commits_leave_the_log_to_the_checkpoint_thread() {
        let dir = std::env::temp_dir().join(format!("mp-store-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir).unwrap();
        let automatic: i64 = store
            .lock()
            .pragma_query_value(None, "wal_autocheckpoint", |row| row.get(0))
            .unwrap();
        assert_eq!(automatic, 0, "no commit copies the log into the database");
        let mut big = record("big");
        big.final_screen = Some(vec![b'x'; 64 << 10]);
        for i in 0..100 {
            big.id = format!("big-{i}");
            store.save(&big).unwrap();
        }
        // The checkpoint thread copies the log into the database file (6.4 MB of screens).
        let database = || std::fs::metadata(dir.join(DATABASE)).unwrap().len();
        let started = std::time::Instant::now();
        while database() < 6 << 20 && started.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(database() >= 6 << 20, "{} bytes", database());
        assert_eq!(store.load().unwrap().len(), 100);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn records_survive_reopening_and_a_second_server_is_refused() {
        let dir = std::env::temp_dir().join(format!("mp-store-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir).unwrap();
        let mut first = record("one");
        store.save(&first).unwrap();
        store.save(&record("two")).unwrap();
        first.status = "exited".into();
        first.exit_code = Some(3);
        first.ended_at_ms = Some(1_700_000_000_500);
        first.final_screen = Some(b"{}".to_vec());
        store.save(&first).unwrap();
        store.remove("two").unwrap();

        let refused = Store::open(&dir).err().expect("a second store is refused");
        assert!(refused.contains("another monkeyproof server"), "{refused}");
        drop(store);

        let store = Store::open(&dir).unwrap();
        assert_eq!(store.load().unwrap(), vec![first.clone()]);
        assert_eq!(store.get("one").unwrap(), Some(first));
        assert_eq!(store.get("two").unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
