//! Finding and signalling every process of a session's POSIX process session.
//!
//! A session's child is spawned as a session leader (pid == sid). Shells put background jobs in
//! other process groups of the same session, so signalling the leader or its group misses them;
//! scanning `/proc` for the session id reaches them all. Processes that called `setsid` themselves
//! have left the session and are not reached (documented in the README).
//!
//! Scanning by session id is safe against pid reuse: the kernel does not hand out a pid again while
//! any process still uses it as its session id.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The pids of every live process whose session id is `sid` (zombies included).
pub fn session_members(sid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat_session_id(pid) == Some(sid))
        .collect()
}

/// Whether any process other than zombies still belongs to session `sid`.
pub fn session_has_live_members(sid: u32) -> bool {
    session_members(sid)
        .into_iter()
        .any(|pid| stat_field(pid, 0).as_deref() != Some("Z"))
}

/// Sends `signal` to every process of session `sid`; returns how many were signalled.
pub fn signal_session(sid: u32, signal: Signal) -> usize {
    session_members(sid)
        .into_iter()
        .filter(|&pid| kill(Pid::from_raw(pid as i32), signal).is_ok())
        .count()
}

fn stat_session_id(pid: u32) -> Option<u32> {
    stat_field(pid, 3)?.parse().ok()
}

/// Field `index` of `/proc/PID/stat` counted after the `)` that closes the command name
/// (0 = state, 1 = ppid, 2 = pgrp, 3 = session). The name itself may hold spaces and parens.
fn stat_field(pid: u32, index: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(index).map(str::to_owned)
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
