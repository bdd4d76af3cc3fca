//! Typed-into sessions first: while somebody types into a session (the server says so with
//! `Typed`), the PTYs of the other sessions printing in bulk share a bounded read rate, so a
//! keystroke's echo never queues behind floods in the keeper, its socket and the server. A PTY
//! that is not read fills up and its program waits on it: nothing is lost, and the kernel does
//! no work for output nobody reads yet. With nobody typing, a flood is read as fast as it
//! prints.

use std::time::{Duration, Instant};

/// A read this large marks its PTY hot: a program printing in bulk, not echoing keys.
pub(super) const HOT_READ: usize = 2048;
/// How long after a keystroke its session counts as typed into.
const TYPING_WINDOW: Duration = Duration::from_secs(2);
/// What the hot PTYs of sessions not typed into may read together per second while somebody
/// types (the floods' output still reaches the screen and the transcript, only later).
const BULK_BYTES_PER_SEC: f64 = 1e6;
/// The most unused rate saved up (one full read).
const BURST: f64 = 64.0 * 1024.0;

/// Whether a keystroke at `at` is recent at `now`.
pub(super) fn typed_lately(at: Option<Instant>, now: Instant) -> bool {
    at.is_some_and(|at| now.duration_since(at) < TYPING_WINDOW)
}

/// The shared budget of the hot PTYs' reads.
#[derive(Debug)]
pub(super) struct BulkBudget {
    /// The last keystroke into any session.
    typed_at: Option<Instant>,
    /// Bytes hot PTYs may still read (below zero after a read larger than what was left).
    bytes: f64,
    refilled: Instant,
}

impl Default for BulkBudget {
    fn default() -> Self {
        Self {
            typed_at: None,
            bytes: 0.0,
            refilled: Instant::now(),
        }
    }
}

impl BulkBudget {
    /// Somebody typed into a session.
    pub(super) fn typed(&mut self, now: Instant) {
        if !typed_lately(self.typed_at, now) {
            // Bulk output read before counts for nothing: the budget starts from now.
            self.bytes = 0.0;
            self.refilled = now;
        }
        self.typed_at = Some(now);
    }

    /// Whether a hot PTY of a session not typed into may be read now.
    pub(super) fn allows_hot_read(&mut self, now: Instant) -> bool {
        if !typed_lately(self.typed_at, now) {
            return true;
        }
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.bytes = (self.bytes + elapsed * BULK_BYTES_PER_SEC).min(BURST);
        self.bytes > 0.0
    }

    /// Counts a hot read of `n` bytes from a session not typed into.
    pub(super) fn spend(&mut self, n: usize, now: Instant) {
        if typed_lately(self.typed_at, now) {
            self.bytes -= n as f64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floods_are_read_freely_until_somebody_types_then_share_a_bounded_rate() {
        let start = Instant::now();
        let mut budget = BulkBudget::default();
        for _ in 0..100 {
            assert!(budget.allows_hot_read(start));
            budget.spend(65536, start);
        }
        budget.typed(start);
        assert!(!budget.allows_hot_read(start), "no rate saved up yet");
        let later = start + Duration::from_millis(50);
        assert!(budget.allows_hot_read(later), "50 KB of rate saved up");
        budget.spend(65536, later);
        assert!(!budget.allows_hot_read(later));
        assert!(
            !budget.allows_hot_read(later + Duration::from_millis(10)),
            "still paying the last read back"
        );
        assert!(budget.allows_hot_read(later + Duration::from_millis(20)));
        // Nobody typed for TYPING_WINDOW: free again.
        assert!(budget.allows_hot_read(start + TYPING_WINDOW));
        assert!(!typed_lately(Some(start), start + TYPING_WINDOW));
        assert!(typed_lately(Some(start), later));
    }
}
