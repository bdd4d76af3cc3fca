//! Finding, signalling and renicing every process of a session's POSIX process session.
//!
//! A session's child is spawned as a session leader (pid == sid). Shells put background jobs in
//! other process groups of the same session, so signalling the leader or its group misses them;
//! scanning `/proc` for the session id reaches them all. A child that called `setsid` has left the
//! session but is still reached through its parent while that parent lives; once orphaned (its
//! parent gone, re-parented to init) it is not (documented in the README).
//!
//! The session id is safe to scan for only while the leader is unreaped (see
//! `session/lifecycle.rs`, which guarantees it). Each process found is then signalled through a
//! pidfd opened *before* its membership is confirmed once more, so a process that ended
//! between the scan and the signal, and whose pid went to a stranger, is never hit: the pidfd
//! names the process, not the number.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Instant;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// One line of `/proc/PID/stat`, the fields that matter here.
#[derive(Debug, Clone, Copy)]
struct ProcStat {
    pid: u32,
    ppid: u32,
    sid: u32,
    zombie: bool,
    /// User and system time, its own and its waited-for children's, in clock ticks.
    cpu_ticks: u64,
    /// Resident set size, in pages.
    rss_pages: u64,
}

/// What a running session's processes use, summed over them (see `members_of`).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ResourceUse {
    /// CPU time (user + system) of the live processes and of the children they waited for.
    pub cpu_ms: u64,
    /// Resident memory, summed: pages two processes share count twice, as in `ps`.
    pub memory_bytes: u64,
    /// Live (not zombie) processes.
    pub processes: u32,
    /// Whether the session runs at the lowest CPU priority because it floods output.
    pub throttled: bool,
    /// The limits of the session's cgroup; null when it has none (see the README's
    /// Isolation).
    pub limits: Option<super::cgroup::Limits>,
}

/// Every process at one moment, indexed by session and by parent (a session asks for its own
/// few among thousands). Reading every process's `stat` is the expensive part (~15 µs each:
/// 0.15 s with 10,000 sessions), so sessions that ask together share one (`Scan::shared`).
#[derive(Default)]
pub struct Scan {
    all: Vec<ProcStat>,
    by_sid: HashMap<u32, Vec<usize>>,
    by_parent: HashMap<u32, Vec<usize>>,
}

impl Scan {
    /// Reads every process now. Blocking.
    pub fn now() -> Self {
        let mut scan = Self::default();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return scan;
        };
        scan.all = dir
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(proc_stat)
            .collect();
        for (i, p) in scan.all.iter().enumerate() {
            scan.by_sid.entry(p.sid).or_default().push(i);
            scan.by_parent.entry(p.ppid).or_default().push(i);
        }
        scan
    }

    /// A scan that began after this call: the one everyone waiting with this caller shares.
    /// 10,000 sessions killed at a stop, each signalling and then polling whether its processes
    /// are gone, make one scan per round instead of 10,000 (which made a stop quadratic in the
    /// sessions: minutes). Beginning after the call, a shared scan proves what one's own would.
    pub async fn shared() -> Arc<Scan> {
        static LAST: tokio::sync::Mutex<Option<(Instant, Arc<Scan>)>> =
            tokio::sync::Mutex::const_new(None);
        let asked = Instant::now();
        let mut last = LAST.lock().await;
        if let Some((began, scan)) = &*last
            && *began >= asked
        {
            return scan.clone();
        }
        let began = Instant::now();
        let scan = Arc::new(
            tokio::task::spawn_blocking(Scan::now)
                .await
                .unwrap_or_default(),
        );
        *last = Some((began, scan.clone()));
        scan
    }

    /// Every process of session `sid`, plus every descendant of one of them that left the
    /// session with `setsid` (while its parent is still there to link it), zombies included.
    fn members_of(&self, sid: u32) -> Vec<ProcStat> {
        let at = |indexes: Option<&Vec<usize>>| -> Vec<ProcStat> {
            indexes.map_or_else(Vec::new, |i| i.iter().map(|&i| self.all[i]).collect())
        };
        let mut members = at(self.by_sid.get(&sid));
        let mut i = 0;
        while i < members.len() {
            let parent = members[i].pid;
            for child in at(self.by_parent.get(&parent)) {
                if child.sid != sid && !members.iter().any(|m| m.pid == child.pid) {
                    members.push(child);
                }
            }
            i += 1;
        }
        members
    }

    /// Whether any process of the session (see `members_of`) was alive (not a zombie). A scan
    /// that says none was stays true later: the dead start nothing, and the session's id is not
    /// handed out again while its leader is unreaped.
    pub fn has_live_members(&self, sid: u32) -> bool {
        self.members_of(sid).iter().any(|p| !p.zombie)
    }

    /// What session `sid`'s processes use. The caller must hold the session's leader
    /// unreaped, so that `sid` is provably that session's.
    pub fn session_use(&self, sid: u32) -> ResourceUse {
        // SAFETY: sysconf reads only its argument.
        let (ticks_per_second, page_size) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        let (ticks_per_second, page_size) =
            (ticks_per_second.max(1) as u64, page_size.max(1) as u64);
        let members = self.members_of(sid);
        let live = members.iter().filter(|p| !p.zombie);
        ResourceUse {
            cpu_ms: members.iter().map(|p| p.cpu_ticks).sum::<u64>() * 1000 / ticks_per_second,
            memory_bytes: live.clone().map(|p| p.rss_pages).sum::<u64>() * page_size,
            processes: live.count() as u32,
            throttled: false,
            limits: None,
        }
    }

    /// The session ids that some live (not zombie) process has.
    pub fn live_session_ids(&self) -> HashSet<u32> {
        self.all
            .iter()
            .filter(|p| !p.zombie)
            .map(|p| p.sid)
            .collect()
    }

    /// Every process of session `sid` (see `members_of`), each confirmed a member once more
    /// with a pidfd held: the pidfd names the process, so one that ends and whose pid goes to
    /// a stranger is never mistaken for it.
    fn confirmed_members(&self, sid: u32) -> HashMap<u32, OwnedFd> {
        // All found and confirmed before any is acted on: a child that left the session is
        // linked only through its parent, which a signal may end.
        let mut confirmed: HashMap<u32, OwnedFd> = HashMap::new();
        for candidate in self.members_of(sid) {
            let Some(handle) = pidfd_open(candidate.pid) else {
                continue;
            };
            // Read again with the pidfd held: if the process is the pidfd's, this is its
            // state; if the pidfd's process is gone, acting on it does nothing.
            let Some(now) = proc_stat(candidate.pid) else {
                continue;
            };
            let ours = now.sid == sid
                || confirmed
                    .get(&now.ppid)
                    .is_some_and(|parent| still_running(parent.as_fd()));
            if ours {
                confirmed.insert(candidate.pid, handle);
            }
        }
        confirmed
    }

    /// Sends `signal` to every process of session `sid` found in this scan; returns how many
    /// were signalled. The caller must hold the session's leader unreaped (so `sid` is
    /// provably that session's, now and when the scan was made).
    pub fn signal_session(&self, sid: u32, signal: Signal) -> usize {
        let confirmed = self.confirmed_members(sid);
        // The leader's process group (its id is the session's) needs no descriptor, so it is
        // reached even when the server has run out of them and cannot read /proc.
        let group = kill(Pid::from_raw(-(sid as i32)), signal).is_ok();
        let signalled = confirmed
            .values()
            .filter(|handle| pidfd_send_signal(handle, signal))
            .count();
        signalled.max(usize::from(group))
    }

    /// Sets the nice value of every process of session `sid` (its children inherit it);
    /// returns how many were set. The caller must hold the session's leader unreaped.
    /// `setpriority` has no pidfd form: a process confirmed a moment before that ended and
    /// whose pid was handed out again at once could be reniced instead — which needs the pid
    /// space to wrap within microseconds, and only changes a priority.
    pub fn renice_session(&self, sid: u32, nice: i32) -> usize {
        self.confirmed_members(sid)
            .iter()
            .filter(|(pid, handle)| {
                still_running(handle.as_fd())
                    // SAFETY: setpriority reads only its arguments.
                    && unsafe {
                        libc::setpriority(libc::PRIO_PROCESS, **pid as libc::id_t, nice)
                    } == 0
            })
            .count()
    }
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a fresh descriptor that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

fn pidfd_send_signal(handle: &OwnedFd, signal: Signal) -> bool {
    // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
    let result = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            handle.as_raw_fd(),
            signal as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    result == 0
}

/// Whether the process behind a pidfd has not ended (a pidfd turns readable when it does).
fn still_running(handle: std::os::fd::BorrowedFd) -> bool {
    matches!(
        poll(
            &mut [PollFd::new(handle, PollFlags::POLLIN)],
            PollTimeout::ZERO
        ),
        Ok(0)
    )
}

/// Parses `/proc/PID/stat` (proc(5)): the fields after the `)` that closes the command name
/// (which may hold spaces and parens) are state, ppid, pgrp, session, …
fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // Numbered from the state (field 3 in proc(5)).
    let number = |field: usize| fields.get(field - 3)?.parse::<u64>().ok();
    // Usage figures are read leniently: a process must never be missed (by a kill) for them.
    let cpu_ticks = (14..=17).map(|field| number(field).unwrap_or(0)).sum();
    Some(ProcStat {
        pid,
        ppid: number(4)? as u32,
        sid: number(6)? as u32,
        zombie: *fields.first()? == "Z",
        cpu_ticks,
        rss_pages: number(24).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_own_session() {
        let sid = nix::unistd::getsid(None).unwrap().as_raw() as u32;
        let scan = Scan::now();
        assert!(
            scan.members_of(sid)
                .iter()
                .any(|p| p.pid == std::process::id())
        );
        assert!(scan.has_live_members(sid));
        assert!(scan.live_session_ids().contains(&sid));
    }

    #[test]
    fn own_session_uses_memory_and_time() {
        let sid = nix::unistd::getsid(None).unwrap().as_raw() as u32;
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(50) {
            std::hint::black_box(started.elapsed());
        }
        let used = Scan::now().session_use(sid);
        assert!(used.processes >= 1, "{used:?}");
        assert!(used.memory_bytes > 1 << 20, "{used:?}");
        assert!(used.cpu_ms >= 10, "{used:?}");
    }
}
