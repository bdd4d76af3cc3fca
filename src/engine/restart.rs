//! What a server starting on a data directory takes over from earlier runs: the running
//! sessions the keeper holds (adopted: see `Session::adopt`) and the records of the ones that
//! ended (listed as they were: see `Session::restore`).

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use dashmap::DashMap;

use super::cgroup::Cgroups;
use super::events::{EventBus, EventKind};
use super::process;
use super::session::{Serving, abandon_unrecorded};
use super::{EngineConfig, RING_BYTES_PER_LINE, Session};
use crate::keeper::Keeper;
use crate::store::{Store, Timeline};

/// The sessions of earlier runs, running ones already being served.
pub(super) struct EarlierRuns {
    pub sessions: DashMap<String, Arc<Session>>,
    /// The keeper, if one was running.
    pub keeper: Option<Arc<Keeper>>,
}

impl EarlierRuns {
    /// Adopts what the keeper holds, restores the rest of the records, then announces each
    /// adopted session (`adopted`) and starts serving it. Blocking.
    pub fn take_over(
        config: &EngineConfig,
        store: &Arc<Store>,
        events: &Arc<EventBus>,
        timeline: &Arc<Timeline>,
        cgroups: &Option<Arc<Cgroups>>,
        holding: &Arc<AtomicUsize>,
    ) -> Result<Self, String> {
        let mut records = store
            .load()
            .map_err(|e| format!("cannot read {}: {e}", store.path().display()))?;
        let sessions = DashMap::new();
        let keeper = Keeper::connect_running(&config.data_dir)?.map(Arc::new);
        let mut adopted = Vec::new();
        if let Some(keeper) = &keeper {
            let serving = || Serving {
                ring_capacity: config.output_buffer_lines.max(1) * RING_BYTES_PER_LINE,
                events: events.clone(),
                store: store.clone(),
                keeper: keeper.clone(),
                timeline: timeline.clone(),
                cgroups: cgroups.clone(),
                holding: holding.clone(),
            };
            for held in keeper.list()? {
                let Some(at) = records.iter().position(|r| r.id == held.id) else {
                    tracing::warn!(
                        session = %held.id, pid = held.pid,
                        "the keeper holds a session nobody recorded: killing it"
                    );
                    abandon_unrecorded(&held, keeper);
                    continue;
                };
                let record = records.remove(at);
                let (id, pid) = (held.id.clone(), held.pid);
                match Session::adopt(record, held, serving()) {
                    Ok((session, start)) => {
                        sessions.insert(id.clone(), session);
                        adopted.push((id, start));
                    }
                    Err(why) => {
                        tracing::error!(
                            session = %id, pid, %why,
                            "cannot adopt the session: killing it"
                        );
                        process::Scan::now().signal_session(pid, nix::sys::signal::Signal::SIGKILL);
                        keeper.reap(&id);
                    }
                }
            }
        }
        for record in records {
            let id = record.id.clone();
            match Session::restore(record, store.clone(), events.clone()) {
                Some(session) => {
                    sessions.insert(id, session);
                }
                None => tracing::warn!(session = %id, "unreadable session record: skipped"),
            }
        }
        if !sessions.is_empty() {
            tracing::info!(
                count = sessions.len(),
                running = adopted.len(),
                "sessions of earlier runs listed again"
            );
        }
        for (id, start) in adopted {
            events.publish(&id, EventKind::Adopted);
            start.serve();
        }
        Ok(Self { sessions, keeper })
    }
}
