//! What viewers in step share, so that a thousand viewers cost the session lock one copy.
//!
//! Viewers of a busy session mostly ask for the same thing at once: the chunk of output after
//! the offset they all reached, or — when a burst left them all behind the ring — a redraw of
//! the same screen. The last of each is kept as shared bytes; the next viewer asking for the same
//! gets it without copying the ring or drawing the screen again under the lock.

use bytes::Bytes;

use super::super::screen::TermSize;
use super::State;

/// The last chunk read from the ring and the last resync redraw.
#[derive(Default)]
pub(super) struct SharedReads {
    /// Output starting at this offset (never longer than the viewer's chunk limit).
    chunk: Option<(u64, Bytes)>,
    /// The screen as of this offset, at this size.
    redraw: Option<(u64, TermSize, Bytes)>,
}

impl State {
    /// Up to `max` bytes of output from `offset`, which must still be in the ring and short of
    /// its end.
    pub(super) fn output_from(&mut self, offset: u64, max: usize) -> Bytes {
        if let Some((at, chunk)) = &self.shared.chunk
            && *at == offset
            && chunk.len() <= max
        {
            return chunk.clone();
        }
        let chunk = Bytes::from(self.log.read_from(offset, max).unwrap_or_default());
        self.shared.chunk = Some((offset, chunk.clone()));
        chunk
    }

    /// A redraw of the screen as it is now (at the end of the output).
    pub(super) fn shared_redraw(&mut self) -> Bytes {
        let (total, size) = (self.log.total(), self.size);
        if let Some((at, at_size, redraw)) = &self.shared.redraw
            && (*at, *at_size) == (total, size)
        {
            return redraw.clone();
        }
        let redraw = Bytes::from(self.screen.redraw());
        self.shared.redraw = Some((total, size, redraw.clone()));
        redraw
    }
}
