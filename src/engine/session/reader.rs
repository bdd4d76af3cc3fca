//! The reader thread: PTY → transcript (see `recorder.rs`) → ring → screen → wake viewers, one
//! OS thread per session.
//!
//! A PTY buffers only ~12 KB between the program and us, so every read is recorded at once (the
//! kernel moves the next chunk meanwhile) and the reader is straight back at the PTY; only the
//! wake-up of viewers is batched, to once per `READ_CHUNK` or whenever the PTY has nothing more on
//! its way. What the screen model notices on the way (title changes, bells) is published from
//! here, and the answers it owes the program are queued for the writer task (never written from
//! this thread: a program that does not read its input must not stop its output being read).

use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::super::events::EventKind;
use super::input::{ANSWERED_KEPT, Answered};
use super::recorder::{Recorded, Recorder};
use super::{Session, lock};
use crate::store::{MARK_EVERY, MarkKind};

/// How often a blocked reader wakes to see whether it was told to stop.
const READER_POLL_MS: u16 = 250;
/// The most output recorded before viewers are woken, and the largest single PTY read.
const READ_CHUNK: usize = 32 * 1024;
/// How long output must pause before the reader draws the screen's backlog (so reading a quiet
/// screen is instant and its backlog's memory is given back).
const DRAW_BACKLOG_AFTER_MS: u16 = 20;

impl Session {
    pub(super) fn read_loop(self: Arc<Self>, mut recorder: Recorder) {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut backlog = false;
        let mut unpublished = 0;
        let mut timing = Timing::from(self.lock_state().log.total());
        while !self.stop_reading.load(Ordering::Relaxed) {
            // The PTY is non-blocking; a read that finds nothing still waits for output the
            // kernel is moving to us right now, so EAGAIN means the program has paused.
            match recorder.record(&mut buf) {
                Ok(Recorded::Bytes(n)) => {
                    backlog = self.ingest(&buf[..n]);
                    if let Some((offset, at)) = timing.read(n) {
                        self.mark(MarkKind::Output, offset, at, String::new());
                    }
                    unpublished += n;
                    if unpublished >= READ_CHUNK {
                        self.publish();
                        unpublished = 0;
                    }
                    continue;
                }
                Ok(Recorded::Nothing) => {
                    if let Some((offset, at)) = timing.paused() {
                        self.mark(MarkKind::Output, offset, at, String::new());
                    }
                }
                Ok(Recorded::End) => break,
                Err(err) => {
                    tracing::error!(session = %self.id, %err, "reading the PTY failed");
                    break;
                }
            }
            if unpublished > 0 {
                self.publish();
                unpublished = 0;
            }
            let timeout = if backlog {
                DRAW_BACKLOG_AFTER_MS
            } else {
                READER_POLL_MS
            };
            match poll(
                &mut [PollFd::new(recorder.pty().as_fd(), PollFlags::POLLIN)],
                PollTimeout::from(timeout),
            ) {
                Ok(0) if backlog => {
                    self.lock_state().screen.catch_up();
                    backlog = false;
                }
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => break,
            }
        }
        if let Some((offset, at)) = timing.paused() {
            self.mark(MarkKind::Output, offset, at, String::new());
        }
        recorder.sync();
        self.lock_state().reader_done = true;
        self.publish();
        if self.release_pty_if_done()
            && let Some(store) = &self.store
        {
            // The end was saved before the last output was read: save the final screen too.
            self.save_record(store);
        }
    }

    /// Records a chunk of output (viewers are woken by the caller); returns whether the screen
    /// has a backlog to draw.
    fn ingest(&self, bytes: &[u8]) -> bool {
        let (replies, titles, bells, backlog) = {
            let mut state = self.lock_state();
            let bells_before = state.screen.bells();
            state.log.append(bytes);
            state.screen.process(bytes);
            state.last_output_at = Some(SystemTime::now());
            let bells = state.screen.bells();
            (
                state.screen.take_replies(),
                state.screen.take_title_changes(),
                (bells > bells_before).then_some(bells),
                state.screen.has_backlog(),
            )
        };
        if !replies.is_empty() {
            let mut answered = lock(&self.answered);
            for (kind, reply) in replies {
                let seq = answered.back().map_or(1, |a| a.seq + 1);
                if answered.len() == ANSWERED_KEPT {
                    answered.pop_front();
                }
                answered.push_back(Answered {
                    seq,
                    kind,
                    at: Instant::now(),
                });
                self.input.push_answer(reply);
            }
        }
        for title in titles {
            self.emit(EventKind::Title(title));
        }
        if let Some(count) = bells {
            self.emit(EventKind::Bell { count });
        }
        backlog
    }
}

/// When output was read, coalesced to at most one mark per `MARK_EVERY` and one at each pause.
struct Timing {
    read: u64,
    marked: u64,
    marked_at: Instant,
    last_read_at: SystemTime,
}

impl Timing {
    fn from(offset: u64) -> Self {
        Self {
            read: offset,
            marked: offset,
            marked_at: Instant::now(),
            last_read_at: SystemTime::now(),
        }
    }

    /// `n` more bytes were read now; a mark if one is due.
    fn read(&mut self, n: usize) -> Option<(u64, SystemTime)> {
        self.read += n as u64;
        self.last_read_at = SystemTime::now();
        (self.marked_at.elapsed() >= MARK_EVERY).then(|| self.take())
    }

    /// Output paused: a mark for what was read since the last one.
    fn paused(&mut self) -> Option<(u64, SystemTime)> {
        (self.read > self.marked).then(|| self.take())
    }

    fn take(&mut self) -> (u64, SystemTime) {
        self.marked = self.read;
        self.marked_at = Instant::now();
        (self.read, self.last_read_at)
    }
}
