//! A quiet screen whose whole history is short sleeps as that history. The vt100 grid costs ~32
//! bytes a cell — 60 KB for 80×24, whatever is on it — while an idle shell has printed a
//! prompt of a few dozen bytes. So as long as a screen has been told little (`MAX_REPLAY_BYTES`
//! of output, `MAX_REPLAY_RESIZES` resizes), it keeps what it was told; `Screen::doze` then
//! lets the parser go, and the next question asked of it replays that history into a new
//! parser first. The model is deterministic, so the replayed screen is the same screen as of
//! the same byte: the same picture, scrollback, modes, title and bell count. Answers to queries
//! and title changes were taken when the output first came, so the replay's are dropped.

use super::{Model, Screen, TermSize};

/// The most output a screen keeps for a replay; past it, it stays awake for good.
const MAX_REPLAY_BYTES: usize = 16 * 1024;
/// The most resizes a screen keeps for a replay.
const MAX_REPLAY_RESIZES: usize = 64;

/// Everything a screen was told, in order.
#[derive(Debug, Clone)]
pub(super) struct Replay {
    /// The size it started at.
    size: TermSize,
    output: Vec<u8>,
    /// Resizes, each after `output[..at]`.
    resizes: Vec<(usize, TermSize)>,
}

impl Replay {
    pub(super) fn new(size: TermSize) -> Self {
        Self {
            size,
            output: Vec::new(),
            resizes: Vec::new(),
        }
    }

    /// Keeps `bytes` of output; false once the history is too long to keep.
    pub(super) fn output(&mut self, bytes: &[u8]) -> bool {
        if self.output.len() + bytes.len() > MAX_REPLAY_BYTES {
            return false;
        }
        self.output.extend_from_slice(bytes);
        true
    }

    /// Keeps a resize; false once there are too many to keep.
    pub(super) fn resize(&mut self, size: TermSize) -> bool {
        if self.resizes.len() == MAX_REPLAY_RESIZES {
            return false;
        }
        self.resizes.push((self.output.len(), size));
        true
    }

    /// A live model told all of it again.
    pub(super) fn replayed(&self) -> Model {
        let mut screen = Screen::untracked(self.size);
        let mut from = 0;
        for &(at, size) in &self.resizes {
            screen.process(&self.output[from..at]);
            screen.resize(size);
            from = at;
        }
        screen.process(&self.output[from..]);
        screen.take_replies();
        screen.take_title_changes();
        screen.model
    }
}

/// A sleeping screen: what wakes it, and what is asked of it without waking it (nothing that
/// needs the grid).
pub(super) struct Dormant {
    pub(super) replay: Replay,
    pub(super) title: String,
    pub(super) bells: u64,
    pub(super) application_cursor: bool,
    pub(super) bracketed_paste: bool,
    pub(super) skipped: u64,
}
