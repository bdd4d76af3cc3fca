//! Finding and signalling every process of a session's POSIX process session.
//!
//! A session's child is spawned as a session leader (pid == sid). Shells put background jobs in
//! other process groups of the same session, so signalling the leader or its group misses them;
//! scanning `/proc` for the session id reaches them all. A child that called `setsid` has left the
//! session but is still reached through its parent while that parent lives; once orphaned (its
//! parent gone, re-parented to init) it is not (documented in the README).
//!
//! Scanning by session id is safe against pid reuse: the kernel does not hand out a pid again while
//! any process still uses it as its session id.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// One line of `/proc/PID/stat`, the fields that matter here.
#[derive(Debug, Clone, Copy)]
struct ProcStat {
    pid: u32,
    ppid: u32,
    sid: u32,
    zombie: bool,
}

/// Every process of session `sid`, plus every descendant of one of them that left the session
/// with `setsid` (while its parent is still there to link it), zombies included.
pub fn session_members(sid: u32) -> Vec<u32> {
    let all = all_processes();
    members_of(&all, sid).into_iter().map(|p| p.pid).collect()
}

fn members_of(all: &[ProcStat], sid: u32) -> Vec<ProcStat> {
    let mut members: Vec<ProcStat> = all.iter().copied().filter(|p| p.sid == sid).collect();
    let mut i = 0;
    while i < members.len() {
        let parent = members[i].pid;
        for child in all.iter().filter(|p| p.ppid == parent && p.sid != sid) {
            if !members.iter().any(|m| m.pid == child.pid) {
                members.push(*child);
            }
        }
        i += 1;
    }
    members
}

/// Whether any process of the session (see `session_members`) is still alive (not a zombie).
pub fn session_has_live_members(sid: u32) -> bool {
    members_of(&all_processes(), sid).iter().any(|p| !p.zombie)
}

/// Sends `signal` to every process of session `sid`; returns how many were signalled.
pub fn signal_session(sid: u32, signal: Signal) -> usize {
    // Found before any is signalled: a child that left the session is linked only through its
    // parent, which the signal may end.
    let members = session_members(sid);
    // The leader's process group (its id is the session's) needs no descriptor, so it is
    // reached even when the server has run out of them and cannot read /proc.
    let group = kill(Pid::from_raw(-(sid as i32)), signal).is_ok();
    let signalled = members
        .into_iter()
        .filter(|&pid| kill(Pid::from_raw(pid as i32), signal).is_ok())
        .count();
    signalled.max(usize::from(group))
}

fn all_processes() -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(proc_stat)
        .collect()
}

/// Parses `/proc/PID/stat`: the fields after the `)` that closes the command name (which may
/// hold spaces and parens) are state, ppid, pgrp, session, …
fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let _pgrp = fields.next()?;
    let sid = fields.next()?.parse().ok()?;
    Some(ProcStat {
        pid,
        ppid,
        sid,
        zombie: state == "Z",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_own_session() {
        let sid = nix::unistd::getsid(None).unwrap().as_raw() as u32;
        assert!(session_members(sid).contains(&std::process::id()));
        assert!(session_has_live_members(sid));
    }
}
