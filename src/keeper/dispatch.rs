//! Where what the keeper says goes, on the one thread that reads the keeper's socket: output to
//! its session's sink at once and in order; pauses and ends of output to a second thread (a
//! pause draws a screen's backlog, an end writes a record: slower work that must not hold up
//! other sessions' output); exits to whoever waits for them; answers to whoever asked.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::mpsc;
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use tokio::sync::oneshot;

use super::lock;
use super::wire::{self, Exit, Incoming, Reply};

/// How long a session's output must pause before its sink hears of it.
pub const PAUSE: Duration = Duration::from_millis(20);

/// Where a watched session's output goes (the engine's session).
pub trait OutputSink: Send + Sync {
    /// `bytes` from `offset` of the session's output, read at `at` (already in the transcript).
    fn output(&self, offset: u64, at: SystemTime, bytes: &[u8]);
    /// The output has paused for `PAUSE`.
    fn paused(&self);
    /// No more output will come (the PTY has no terminal side left, or the session was
    /// unwatched). Not called when the keeper is lost.
    fn closed(&self);
}

/// Who waits for what the keeper says unasked.
#[derive(Default)]
pub(super) struct Routes {
    pub sinks: Mutex<HashMap<String, Weak<dyn OutputSink>>>,
    pub exits: Mutex<Exits>,
}

/// Ends reported by the keeper, waiting for their session to ask, or sessions waiting for
/// their end.
#[derive(Default)]
pub(super) struct Exits {
    pub reported: HashMap<String, Exit>,
    pub waiting: HashMap<String, oneshot::Sender<Exit>>,
    /// The keeper is gone: no more ends will be reported.
    pub lost: bool,
}

/// Slower work for the second thread, in the order it was found.
enum Later {
    Paused(Weak<dyn OutputSink>),
    Closed(Weak<dyn OutputSink>),
}

/// Reads the keeper's socket until the keeper goes; answers go to `answers`.
pub(super) fn read_loop(
    socket: OwnedFd,
    answers: mpsc::Sender<(Reply, Vec<OwnedFd>)>,
    routes: std::sync::Arc<Routes>,
) {
    let (later, for_later) = mpsc::channel::<Later>();
    let worker = std::thread::Builder::new()
        .name("output-pauses".into())
        .spawn(move || {
            for job in for_later {
                match job {
                    Later::Paused(sink) => sink.upgrade().map(|s| s.paused()),
                    Later::Closed(sink) => sink.upgrade().map(|s| s.closed()),
                };
            }
        });
    if worker.is_err() {
        tracing::error!("cannot start a thread: pauses of output go unnoticed");
    }
    let mut body = vec![0u8; wire::MAX_PACKET];
    // Sessions with output since their last pause, and when it last came.
    let mut active: HashMap<String, (Weak<dyn OutputSink>, Instant)> = HashMap::new();
    let mut swept = Instant::now();
    loop {
        let timeout = if active.is_empty() {
            PollTimeout::NONE
        } else {
            PollTimeout::from(PAUSE.as_millis() as u16 / 2)
        };
        let mut readable = [PollFd::new(socket.as_fd(), PollFlags::POLLIN)];
        let has_packet = match poll(&mut readable, timeout) {
            Ok(n) => n > 0,
            Err(nix::errno::Errno::EINTR) => false,
            Err(_) => break,
        };
        if has_packet {
            match wire::receive_incoming(socket.as_raw_fd(), &mut body) {
                Ok(Some((Incoming::Output(output), _))) => {
                    let Some(sink) = lock(&routes.sinks).get(&output.id).cloned() else {
                        continue;
                    };
                    if let Some(live) = sink.upgrade() {
                        let at = UNIX_EPOCH + Duration::from_micros(output.at_us);
                        live.output(output.offset, at, &output.bytes);
                    }
                    match active.get_mut(&output.id) {
                        Some((_, last)) => *last = Instant::now(),
                        None => {
                            active.insert(output.id, (sink, Instant::now()));
                        }
                    }
                }
                Ok(Some((Incoming::Reply(Reply::Exited { id, exit }), _))) => {
                    let mut exits = lock(&routes.exits);
                    match exits.waiting.remove(&id) {
                        Some(waiting) => {
                            let _ = waiting.send(exit);
                        }
                        None => {
                            exits.reported.insert(id, exit);
                        }
                    }
                }
                Ok(Some((Incoming::Reply(Reply::Closed { id }), _))) => {
                    if let Some((sink, _)) = active.remove(&id) {
                        let _ = later.send(Later::Paused(sink));
                    }
                    if let Some(sink) = lock(&routes.sinks).remove(&id) {
                        let _ = later.send(Later::Closed(sink));
                    }
                }
                Ok(Some((Incoming::Reply(answer), fds))) => {
                    let _ = answers.send((answer, fds));
                }
                Ok(None) | Err(_) => break,
            }
        }
        if swept.elapsed() >= PAUSE / 4 {
            swept = Instant::now();
            active.retain(|_, (sink, last)| {
                let paused = last.elapsed() >= PAUSE;
                if paused {
                    let _ = later.send(Later::Paused(sink.clone()));
                }
                !paused
            });
        }
    }
    tracing::error!("lost the connection to the keeper");
    // The sinks stay: their sessions go on in a new keeper (see `Session::rehome`).
    let mut exits = lock(&routes.exits);
    exits.lost = true;
    exits.waiting.clear();
}
