//! A session's life: the program's exit, reaping it, killing the whole process tree, and knowing
//! when none of the session's processes is left.
//!
//! The program is a session leader: its pid is also the POSIX session's and its process group's
//! id. Linux never gives a pid to a new process while the pid's owner is unreaped or any live
//! process uses it as its session or group id. So the leader is not reaped when it exits (its
//! status is read with `WNOWAIT`) but only once no live process of its session is left: until
//! then every process found with that session id, and the process group, are provably the
//! session's, and signalling them can never hit a stranger that reused the pid. Once reaped, the
//! session signals nothing any more — there is nothing of it left to reach. (A process that left
//! with `setsid` is reached through its parent while that parent is in the session; see
//! `process.rs`.) Reader EOF is not exit: a background job may hold the PTY open.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use nix::sys::signal::Signal;
use tokio::sync::oneshot;

use super::super::events::EventKind;
use super::super::process;
use super::recent::FINISHED_TAIL_BYTES;
use super::{ExitInfo, ExitReason, Session, SessionStatus, lock};
use crate::keeper::{Exit, Keeper, child};

/// How long the exit task lets the reader drain output written just before the program exited.
const EXIT_DRAIN: Duration = Duration::from_millis(500);
/// How often a kill looks whether the session's processes are gone.
const GONE_POLL: Duration = Duration::from_millis(20);

/// What is known of the session's processes.
pub(super) struct Processes {
    leader: Mutex<Leader>,
    kill_started: AtomicBool,
    /// The program's end is in the store.
    end_recorded: AtomicBool,
}

impl Processes {
    /// Processes of a program just started or taken over: counted in `holding` until the leader
    /// is reaped.
    pub(super) fn running(holding: &Arc<AtomicUsize>) -> Self {
        holding.fetch_add(1, Ordering::Relaxed);
        Self {
            leader: Mutex::new(Leader {
                exited: false,
                reaped: false,
                counted: Some(Counted(holding.clone())),
            }),
            kill_started: AtomicBool::new(false),
            end_recorded: AtomicBool::new(false),
        }
    }

    /// Processes of a session whose leader was reaped (by an earlier server): nothing of it is
    /// signalled.
    pub(super) fn gone() -> Self {
        Self {
            leader: Mutex::new(Leader {
                exited: true,
                reaped: true,
                counted: None,
            }),
            kill_started: AtomicBool::new(false),
            end_recorded: AtomicBool::new(true),
        }
    }
}

struct Leader {
    /// The exit status was read (without reaping): the leader may be reaped once it is alone.
    exited: bool,
    /// Reaped: its pid may now belong to anyone, so nothing is signalled any more.
    reaped: bool,
    /// The session's place in the engine's count of sessions holding processes, until reaped.
    counted: Option<Counted>,
}

impl Leader {
    fn reaped(&mut self) {
        self.reaped = true;
        self.counted = None;
    }
}

/// One in the engine's count of sessions that may hold processes (`MAX_SESSIONS` bounds it),
/// kept so that the count is read without visiting every session; given back on drop.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Session {
    /// Whether any process of the session may still be alive (the leader is not reaped yet).
    /// Such sessions count towards `MAX_SESSIONS` even when their program has exited.
    pub fn holds_processes(&self) -> bool {
        !lock(&self.processes.leader).reaped
    }

    /// SIGKILLs whatever of the session still lives, tells the keeper to reap the program as
    /// soon as it has ended, and stops signalling it (see `Engine::kill_rest`). `scan` must have
    /// begun before this call: a leader unreaped now was unreaped while it was made, so the
    /// scan's members of its session are the session's. Blocking (signals many processes).
    pub(crate) fn kill_now_and_abandon(&self, scan: &process::Scan) {
        if let Some(_leader) = self.leader_unreaped() {
            scan.signal_session(self.pid, Signal::SIGKILL);
        }
        let mut leader = lock(&self.processes.leader);
        if !leader.reaped && self.holder().is_some() {
            self.let_go();
            leader.reaped();
        }
    }

    /// Whether the program's end is between its reaping and its record: a server that stopped
    /// now would leave a record of a running session that no keeper holds.
    pub(crate) fn end_unrecorded(&self) -> bool {
        let leader = lock(&self.processes.leader);
        leader.exited && leader.reaped && !self.processes.end_recorded.load(Ordering::SeqCst)
    }

    /// Whether the program exited but processes of its session live on (background jobs).
    pub(crate) fn lingers(&self) -> bool {
        let leader = lock(&self.processes.leader);
        leader.exited && !leader.reaped && !self.processes.kill_started.load(Ordering::SeqCst)
    }

    /// Awaits the program's end, reaps it once nothing of its session is left, and records how
    /// it ended after its last output.
    pub(super) async fn wait_for_exit(self: Arc<Self>, exited: oneshot::Receiver<Exit>) {
        let how = match exited.await {
            Ok(exit) => ExitInfo {
                code: exit.code,
                signal: exit.signal,
                reason: None,
            },
            // The keeper is gone (the program's parent now is init): its end can still be
            // seen, but not its status.
            Err(_) => {
                if let Ok(gone) = child::exit_notice(self.pid) {
                    let _ = gone.readable().await;
                }
                ExitInfo {
                    code: None,
                    signal: None,
                    reason: None,
                }
            }
        };
        let how = ExitInfo {
            reason: self
                .out_of_memory()
                .await
                .then_some(ExitReason::OutOfMemory),
            ..how
        };
        lock(&self.processes.leader).exited = true;
        // Output written just before the exit may still be on its way through the PTY.
        self.reader_done_within(EXIT_DRAIN).await;
        // Reaped before the exit is visible: whoever sees it may count on the slot being free.
        self.reap_if_alone().await;
        let status = {
            let mut state = self.lock_state();
            if state.status == SessionStatus::Running {
                state.status = SessionStatus::Exited;
            }
            tracing::info!(
                session = %self.id, requested_by = %self.requested_by, owner = ?self.owner,
                status = ?state.status, code = ?how.code, signal = ?how.signal,
                "audit: session ended"
            );
            state.exit = Some(how.clone());
            state.ended_at = Some(SystemTime::now());
            state.status
        };
        self.release_pty_if_done();
        self.agent_exited();
        // On disk before anyone can see the end.
        self.save_record_async().await;
        self.processes.end_recorded.store(true, Ordering::SeqCst);
        // The output before the exit is reported before it.
        self.report_output();
        self.emit(EventKind::Exit {
            status,
            code: how.code,
            signal: how.signal,
            reason: how.reason,
        });
        self.publish();
    }

    /// Reaps the leader if its exit was read and no live process of its session is left.
    /// Returns whether it is reaped.
    pub(super) async fn reap_if_alone(self: &Arc<Self>) -> bool {
        let scan = process::Scan::shared().await;
        let session = self.clone();
        tokio::task::spawn_blocking(move || session.reap_when(|sid| !scan.has_live_members(sid)))
            .await
            .unwrap_or(false)
    }

    /// Reaps the leader if its exit was read and `alone(pid)` says nothing else of the session
    /// lives. Blocking (reads `/proc`).
    pub(crate) fn reap_when(&self, alone: impl FnOnce(u32) -> bool) -> bool {
        let mut leader = lock(&self.processes.leader);
        if leader.reaped {
            return true;
        }
        if !leader.exited || !alone(self.pid) {
            return false;
        }
        self.let_go();
        leader.reaped();
        if let Some(cgroup) = &self.cgroup {
            // Empty now (a dead process leaves its cgroup before it is reaped), unless a
            // process that left the POSIX session lives on: then the cgroup stays, and keeps it.
            cgroup.cgroups.remove(&self.id);
        }
        true
    }

    /// Tells the keepers of the session that the server is done with it: the parent reaps the
    /// leader, the holder closes the PTY.
    fn let_go(&self) {
        for keeper in [self.keeper.clone(), lock(&self.rehomed).clone()]
            .into_iter()
            .flatten()
        {
            keeper.reap(&self.id);
        }
    }

    /// Once the program is reaped and its output fully read: closes the PTY and keeps only what
    /// a finished session needs in memory (its final screen and a small tail of output; the
    /// rest is read from the transcript). Returns whether it did.
    pub(super) fn release_pty_if_done(&self) -> bool {
        {
            let mut state = self.lock_state();
            if !(state.reader_done && state.exit.is_some()) || state.screen.is_finished() {
                return false;
            }
            state.screen.finish();
            state.log.keep_tail(FINISHED_TAIL_BYTES);
        }
        lock(&self.master).take();
        self.input.close();
        true
    }

    /// Whether the kernel killed processes of the session for going over its memory limit.
    async fn out_of_memory(self: &Arc<Self>) -> bool {
        let Some(cgroups) = self.cgroup.as_ref().map(|c| c.cgroups.clone()) else {
            return false;
        };
        let id = self.id.clone();
        // Off the async workers: it reads a file.
        tokio::task::spawn_blocking(move || cgroups.oom_kills(&id).is_some_and(|n| n > 0))
            .await
            .unwrap_or(false)
    }

    /// Kills the program's whole process session: SIGHUP + SIGTERM (+ SIGCONT, so stopped jobs
    /// can act on them), then SIGKILL to whatever is left after `grace`. Marks a running session
    /// `killed`. Returns once nothing of the session is left (or a bounded while after SIGKILL).
    /// A session whose processes are all gone is left alone: nothing of it is signalled.
    pub async fn kill(self: &Arc<Self>, grace: Duration) {
        {
            let mut state = self.lock_state();
            if state.status == SessionStatus::Running {
                state.status = SessionStatus::Killed;
            }
        }
        self.publish();
        if self.processes.kill_started.swap(true, Ordering::SeqCst) {
            // Someone else is already killing it; just wait with them.
            self.wait_until_gone(grace).await;
            return;
        }
        self.signal(&[Signal::SIGHUP, Signal::SIGTERM, Signal::SIGCONT])
            .await;
        if !self.wait_until_gone(grace).await {
            self.signal(&[Signal::SIGKILL]).await;
            self.wait_until_gone(Duration::from_secs(1)).await;
        }
        self.processes.kill_started.store(false, Ordering::SeqCst);
        // Processes that left the session (setsid) may still hold the PTY: stop reading anyway,
        // once the reader had a moment to drain what the killed ones wrote.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.stop_reading();
    }

    /// Sends `signals` to every process of the session, unless the leader is reaped (then its
    /// ids may belong to strangers). Off the async workers: it reads `/proc`.
    async fn signal(self: &Arc<Self>, signals: &'static [Signal]) {
        let scan = process::Scan::shared().await;
        let session = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            // Held while signalling, so the leader cannot be reaped (freeing its ids) meanwhile.
            // Unreaped now, it was unreaped while the scan was made: the scan's members of its
            // session are the session's.
            let Some(_leader) = session.leader_unreaped() else {
                return;
            };
            for &signal in signals {
                scan.signal_session(session.pid, signal);
            }
        })
        .await;
    }

    /// The leader's lock, held, while the leader is unreaped and its parent (the keeper) alive:
    /// as long as it is held the session's ids are provably its own. `None` otherwise — without
    /// the keeper the leader is init's child, reaped by init when it ends, and its pid may be
    /// anyone's — and then nothing of the session may be signalled or reniced.
    pub(super) fn leader_unreaped(&self) -> Option<impl Sized + '_> {
        let leader = lock(&self.processes.leader);
        (!leader.reaped && self.keeper.as_ref().is_some_and(|k| !k.is_lost())).then_some(leader)
    }

    /// Polls until the program's exit is recorded and it is reaped (nothing of the session
    /// left), for at most `limit`.
    async fn wait_until_gone(self: &Arc<Self>, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.lock_state().exit.is_some() && self.reap_if_alone().await {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(GONE_POLL).await;
        }
    }
}

/// Kills a program that was started but cannot be served (its leader is unreaped: its session
/// is provably its own) and has the keeper reap it once it has ended.
pub(super) fn abandon(pid: u32, keeper: &Keeper, id: &str) {
    process::Scan::now().signal_session(pid, Signal::SIGKILL);
    keeper.reap(id);
}
