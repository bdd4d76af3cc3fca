//! The engine's housekeeping, on a thread of its own: finished sessions expire, lingering ones
//! are reaped, sessions whose keeper died get a new one, and quiet screens sleep.
//!
//! Each round looks at every session, which at 10,000 sessions took 3–10 ms — on an async
//! worker, every second, it stalled whatever else that worker had (echoes, requests). The
//! work itself (removing files, scanning `/proc`, starting a keeper) blocks too. A blocking-pool
//! task per round would keep every idle pool thread awake for good (each is woken in turn), so
//! the rounds get one thread, the same at any number of sessions.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::{Engine, Session};

/// A session that printed nothing for this long has its screen model sleep (see
/// `screen/dormant.rs`): 60 KB of vt100 grid for 80×24 become the few bytes the program printed.
const SCREEN_DOZE_AFTER: Duration = Duration::from_secs(30);
/// How often quiet sessions are looked for.
const SCREEN_DOZE_EVERY: Duration = Duration::from_secs(10);

/// Screens put to sleep in one pass before their memory is given back to the system: trimming
/// the heap takes 20–50 ms at 10,000 sessions, and threads allocating meanwhile may wait, so a
/// few sleeping screens leave their memory to the next allocations instead.
const TRIM_AFTER_DOZED: usize = 256;

/// Stops the housekeeping thread when dropped.
pub struct Purger {
    _stop: mpsc::Sender<()>,
}

/// Starts the housekeeping of `engine`, a round every `period` (the thread enters `runtime`, for
/// what the work starts on it), until the returned `Purger` or the engine is dropped.
pub(super) fn start(
    engine: Weak<Engine>,
    period: Duration,
    runtime: tokio::runtime::Handle,
) -> Purger {
    let (stop, stopped) = mpsc::channel::<()>();
    let started = std::thread::Builder::new()
        .name("purger".into())
        .spawn(move || {
            let _runtime = runtime.enter();
            let mut dozed = Instant::now();
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                let Some(engine) = engine.upgrade() else {
                    break;
                };
                if dozed.elapsed() >= SCREEN_DOZE_EVERY {
                    dozed = Instant::now();
                    doze_quiet_screens(&engine);
                }
                round(&engine);
            }
        });
    if let Err(err) = started {
        tracing::error!(%err, "cannot start the purger thread: finished sessions stay");
    }
    Purger { _stop: stop }
}

/// Removes the expired sessions (with their transcripts and records), gives sessions whose
/// keeper died a new one, and reaps lingering ones.
fn round(engine: &Engine) {
    for session in engine.expired() {
        engine.remove(&session, "expired");
    }
    let homeless: Vec<Arc<Session>> = engine
        .sessions
        .iter()
        .filter(|s| s.lost_its_keeper())
        .map(|s| s.clone())
        .collect();
    if !homeless.is_empty() {
        engine.rehome(&homeless);
    }
    let lingering = engine.lingering();
    if !lingering.is_empty() {
        Engine::reap_lingering(&lingering);
    }
}

/// Lets the screens of sessions quiet for `SCREEN_DOZE_AFTER` sleep.
fn doze_quiet_screens(engine: &Engine) {
    let dozed = engine
        .sessions
        .iter()
        .filter(|s| s.doze_screen_if_quiet(SCREEN_DOZE_AFTER))
        .count();
    if dozed >= TRIM_AFTER_DOZED {
        let started = Instant::now();
        give_freed_memory_back();
        tracing::debug!(dozed, trim = ?started.elapsed(), "screens asleep");
    }
}

/// Returns the heap's free pages to the system: the screens that went to sleep freed 60 KB
/// each, scattered among live allocations, which the allocator would otherwise keep resident.
fn give_freed_memory_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory glibc's allocator holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}
