//! Flood throttling: a program that prints more than `FLOOD_BYTES_PER_TICK` on `HOT_TICKS`
//! activity ticks in a row gets the least CPU (its cgroup's CPU weight 1, or without a cgroup
//! nice 19 for every process of its session) until it has printed less than that on
//! `COOL_TICKS` ticks in a row, or gone idle. A runaway program then leaves the CPU — and with
//! it the keeper and the server, which read and model its output — to the sessions people type
//! into.
//!
//! Without cgroups, only a server that may give the priority back (root, or CAP_SYS_NICE)
//! throttles: an unprivileged one could lower a priority but never restore it, so it says so
//! once and leaves priorities alone.
//!
//! What a session uses (CPU, memory) is read here too: it is what a person checks when a
//! session is throttled.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::super::cgroup::THROTTLED_CPU_WEIGHT;
use super::super::process;
use super::{Session, lock};

/// 640 KB/s at the 100 ms activity tick. Low, because a lower priority costs nothing while the
/// CPU is free (a niced program then runs as fast as any), and 20 floods that share what the
/// keeper and server read each get only a few MB/s.
const FLOOD_BYTES_PER_TICK: u64 = 64 * 1024;
/// 0.3 s of flooding before the priority drops (a burst, e.g. `cat` of a big file, passes).
const HOT_TICKS: u32 = 3;
/// 1 s below the flood rate before it is given back.
const COOL_TICKS: u32 = 10;
/// The nice value of a throttled session.
const THROTTLED_NICE: i32 = 19;

/// A session's flood throttle: what it printed, tick by tick.
#[derive(Debug, Default)]
pub(super) struct Throttle {
    last_total: Option<u64>,
    hot: u32,
    cool: u32,
    on: bool,
}

impl Throttle {
    /// Takes the output total at a tick (`busy`: the session printed lately); returns `Some(on)`
    /// when the throttle turns on or off.
    pub(super) fn observe(&mut self, total: u64, busy: bool) -> Option<bool> {
        let printed = total - self.last_total.unwrap_or(total);
        self.last_total = Some(total);
        if printed > FLOOD_BYTES_PER_TICK {
            self.hot += 1;
            self.cool = 0;
        } else {
            self.hot = 0;
            self.cool += 1;
        }
        let on = if self.on {
            busy && self.cool < COOL_TICKS
        } else {
            self.hot >= HOT_TICKS
        };
        (on != self.on).then(|| {
            self.on = on;
            on
        })
    }
}

/// Whether this server may throttle (see the module's documentation); said once when not.
fn may_throttle() -> bool {
    static WARNED: AtomicBool = AtomicBool::new(false);
    let root = nix::unistd::geteuid().is_root();
    if !root && !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "flood throttling is off: only root (or CAP_SYS_NICE) may give a priority back"
        );
    }
    root
}

impl Session {
    /// What the session's processes use now; `None` once its program has ended (or the
    /// keeper is lost: its ids are then no longer provably its own).
    pub async fn resource_use(self: &Arc<Self>) -> Option<process::ResourceUse> {
        let session = self.clone();
        // Off the async workers: it reads /proc.
        let used = tokio::task::spawn_blocking(move || {
            // Read before the leader's lock, as the lifecycle does.
            let ended = session.lock_state().exit.is_some();
            let _leader = session.leader_unreaped()?;
            let used = process::Scan::now().session_use(session.pid);
            // Its end is recorded a moment before the leader is marked reaped; with nothing of
            // the session alive, that moment is already after.
            if ended && used.processes == 0 {
                return None;
            }
            Some(process::ResourceUse {
                limits: session
                    .cgroup
                    .as_ref()
                    .and_then(|c| c.cgroups.limits(&session.id)),
                ..used
            })
        });
        let used = used.await.ok().flatten()?;
        Some(process::ResourceUse {
            throttled: lock(&self.reported).throttle.on,
            ..used
        })
    }

    /// The throttle's part of the activity tick: `total` is the output so far.
    pub(super) fn throttle_tick(self: &Arc<Self>, total: u64, busy: bool) {
        let Some(on) = lock(&self.reported).throttle.observe(total, busy) else {
            return;
        };
        if self.cgroup.is_none() && !may_throttle() {
            return;
        }
        let session = self.clone();
        // Off the async workers: it reads /proc.
        tokio::task::spawn_blocking(move || {
            // Held, so the leader cannot be reaped (freeing its ids) meanwhile.
            let Some(_leader) = session.leader_unreaped() else {
                return;
            };
            let what = if on {
                "flooding: throttled"
            } else {
                "quiet again: throttle off"
            };
            if let Some(cgroup) = &session.cgroup {
                let weight = if on {
                    THROTTLED_CPU_WEIGHT
                } else {
                    cgroup.cpu_weight
                };
                if let Err(err) = cgroup.cgroups.set_cpu_weight(&session.id, weight) {
                    tracing::warn!(session = %session.id, "cannot set the CPU weight: {err}");
                }
                tracing::info!(session = %session.id, cpu_weight = weight, "{what}");
                return;
            }
            let nice = if on { THROTTLED_NICE } else { 0 };
            let set = process::Scan::now().renice_session(session.pid, nice);
            tracing::info!(session = %session.id, nice, processes = set, "{what}");
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_throttled_after_three_ticks_and_let_go_after_ten_quiet_ones() {
        let mut throttle = Throttle::default();
        let mut total = 0;
        let mut tick = |printed: u64, busy| {
            total += printed;
            throttle.observe(total, busy)
        };
        assert_eq!(tick(0, false), None, "the first tick only takes the total");
        // A burst of two ticks passes.
        assert_eq!(tick(1 << 20, true), None);
        assert_eq!(tick(1 << 20, true), None);
        assert_eq!(tick(0, true), None);
        // Three in a row: throttled.
        assert_eq!(tick(1 << 20, true), None);
        assert_eq!(tick(1 << 20, true), None);
        assert_eq!(tick(1 << 20, true), Some(true));
        assert_eq!(tick(1 << 20, true), None);
        // Printing a little, still busy: let go after ten quiet ticks.
        for _ in 0..9 {
            assert_eq!(tick(100, true), None);
        }
        assert_eq!(tick(100, true), Some(false));
        // Idle: let go at once.
        for _ in 0..3 {
            tick(1 << 20, true);
        }
        assert_eq!(tick(0, false), Some(false));
    }
}
