//! `monkeyproof hook claude` (a Claude Code hook command: the hook's JSON on stdin) and
//! `monkeyproof hook codex [--then PROGRAM ARGS...] JSON` (Codex's notify program: the JSON as
//! the last argument). Each sends one report to the server of its session and exits 0 at once:
//! it never blocks the agent, whether the server is up, down or busy.
//!
//! The session is named by `MONKEYPROOF_SESSION_ID` and proven by `MONKEYPROOF_HOOK_SECRET`, a
//! secret of that session alone (never the server's token); the socket is
//! `MONKEYPROOF_HOOK_SOCKET`. All three are in the session's environment, which the agent
//! passes on to its hooks.

use std::io::Read;
use std::os::unix::net::UnixDatagram;

use serde_json::Value;

use super::report::Report;
use super::{HOOK_SECRET_VAR, HOOK_SOCKET_VAR, SESSION_ID_VAR};

/// The most hook input read from stdin (tool inputs can hold whole files).
const MAX_INPUT: u64 = 8 * 1024 * 1024;
/// How long a report waits for room when the server's queue is full (a Unix datagram socket
/// queues only `net.unix.max_dgram_qlen`, 10 by default, and a burst of hooks can fill it).
const ROOM_WAIT_MS: u16 = 40;

/// Runs the hook with `args` (after `hook`); the exit status is always 0.
pub fn run(args: &[String]) -> i32 {
    let (Ok(session), Ok(secret), Ok(socket)) = (
        std::env::var(SESSION_ID_VAR),
        std::env::var(HOOK_SECRET_VAR),
        std::env::var(HOOK_SOCKET_VAR),
    ) else {
        // Not started by monkeyproof: nothing to tell.
        return 0;
    };
    let report = match args.first().map(String::as_str) {
        Some("claude") => {
            let mut input = Vec::new();
            let _ = std::io::stdin().take(MAX_INPUT).read_to_end(&mut input);
            let Ok(input) = serde_json::from_slice::<Value>(&input) else {
                return 0;
            };
            Report::from_claude(session, secret, &input)
        }
        Some("codex") => {
            let Some(json) = args.last().filter(|_| args.len() > 1) else {
                return 0;
            };
            chain_codex_notify(&args[1..args.len() - 1], json);
            let Ok(notification) = serde_json::from_str::<Value>(json) else {
                return 0;
            };
            Report::from_codex(session, secret, &notification)
        }
        _ => return 0,
    };
    send(&socket, &report);
    0
}

/// Sends `report` as one datagram. A server that is down misses it at once; one whose queue is
/// full gets `ROOM_WAIT_MS` to make room, then misses it.
fn send(socket: &str, report: &Report) {
    use std::os::fd::AsFd;
    let Ok(bytes) = serde_json::to_vec(report) else {
        return;
    };
    let Ok(sender) = UnixDatagram::unbound() else {
        return;
    };
    // Connected, so that writability means room in the server's queue.
    if sender.connect(socket).is_err() || sender.set_nonblocking(true).is_err() {
        return;
    }
    if let Err(err) = sender.send(&bytes)
        && err.kind() == std::io::ErrorKind::WouldBlock
    {
        let mut room = [nix::poll::PollFd::new(
            sender.as_fd(),
            nix::poll::PollFlags::POLLOUT,
        )];
        if let Ok(1) = nix::poll::poll(&mut room, nix::poll::PollTimeout::from(ROOM_WAIT_MS)) {
            let _ = sender.send(&bytes);
        }
    }
}

/// Runs the user's own notify program (`--then PROGRAM ARGS...`, from their Codex config) with
/// the notification, as Codex would have, without waiting for it.
fn chain_codex_notify(options: &[String], json: &str) {
    let Some(("--then", program)) = options
        .split_first()
        .map(|(flag, rest)| (flag.as_str(), rest))
    else {
        return;
    };
    if let Some((name, args)) = program.split_first() {
        let _ = std::process::Command::new(name)
            .args(args)
            .arg(json)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}
