//! A session's output as the keeper hands it over (see `keeper::dispatch`; the keeper has put
//! it in the transcript already): into the ring and the screen under one lock (so a snapshot is
//! always "as of byte N"), then viewers are woken. No thread of the session's own: one thread
//! of the server takes every session's output from the keeper.
//!
//! What the screen model notices on the way (title changes, bells) is published from here, and
//! the answers it owes the program are queued for the writer task (never written from here: a
//! program that does not read its input must not stop any output being taken). When output
//! pauses, the screen's backlog is drawn (so reading a quiet screen is instant and its
//! backlog's memory is given back).

use std::time::{Instant, SystemTime};

use super::super::events::EventKind;
use super::input::{ANSWERED_KEPT, Answered};
use super::{Session, lock};
use crate::keeper::OutputSink;
use crate::store::{MARK_EVERY, MarkKind};

impl OutputSink for Session {
    fn output(&self, offset: u64, at: SystemTime, bytes: &[u8]) {
        let taken = self.ingest(offset, bytes);
        if taken == 0 {
            return;
        }
        if let Some((offset, at)) = lock(&self.timing).read(taken, at) {
            self.mark(MarkKind::Output, offset, at, String::new());
        }
        self.publish();
    }

    fn paused(&self) {
        if let Some((offset, at)) = lock(&self.timing).paused() {
            self.mark(MarkKind::Output, offset, at, String::new());
        }
        {
            let mut state = self.lock_state();
            if state.screen.has_backlog() {
                state.screen.catch_up();
            }
        }
        self.agent_reads_screen();
    }

    fn closed(&self) {
        if let Some((offset, at)) = lock(&self.timing).paused() {
            self.mark(MarkKind::Output, offset, at, String::new());
        }
        {
            let mut state = self.lock_state();
            if state.reader_done {
                return;
            }
            state.reader_done = true;
        }
        self.publish();
        if self.release_pty_if_done()
            && let Some(store) = &self.store
        {
            // The end was saved before the last output was taken: save the final screen too.
            self.save_record(store);
        }
    }
}

impl Session {
    /// Stops taking the session's output (the keeper stops reading its PTY): `reader_done`
    /// once the last output read is taken.
    pub(crate) fn stop_reading(&self) {
        match self.holder() {
            Some(keeper) if !keeper.is_lost() => keeper.unwatch(&self.id),
            _ => self.closed(),
        }
    }

    /// Takes the chunk of output at `offset` into the ring and the screen (viewers are woken by
    /// the caller); returns how many bytes were new (those before the log's end were taken
    /// already, and are never taken twice).
    fn ingest(&self, offset: u64, bytes: &[u8]) -> usize {
        let (replies, titles, bells, taken) = {
            let mut state = self.lock_state();
            let total = state.log.total();
            if offset != total {
                tracing::error!(session = %self.id, offset, total, "output out of step with the log");
            }
            let bytes = bytes
                .get(total.saturating_sub(offset) as usize..)
                .unwrap_or_default();
            if bytes.is_empty() {
                return 0;
            }
            let bells_before = state.screen.bells();
            state.log.append(bytes);
            state.screen.process(bytes);
            state.last_output_at = Some(SystemTime::now());
            self.stir();
            let bells = state.screen.bells();
            (
                state.screen.take_replies(),
                state.screen.take_title_changes(),
                (bells > bells_before).then_some(bells),
                bytes.len(),
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
        taken
    }
}

/// When output was read, coalesced to at most one mark per `MARK_EVERY` and one at each pause.
pub(super) struct Timing {
    read: u64,
    marked: u64,
    marked_at: Instant,
    last_read_at: SystemTime,
}

impl Timing {
    pub(super) fn from(offset: u64) -> Self {
        Self {
            read: offset,
            marked: offset,
            marked_at: Instant::now(),
            last_read_at: SystemTime::now(),
        }
    }

    /// `n` more bytes were read at `at`; a mark if one is due.
    fn read(&mut self, n: usize, at: SystemTime) -> Option<(u64, SystemTime)> {
        self.read += n as u64;
        self.last_read_at = at;
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
