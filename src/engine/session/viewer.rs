//! A viewer's cursor over a session's output: where it is, and what it should see next.
//!
//! Viewers share the session's ring instead of owning queues: each one keeps only its offset and
//! is woken through a watch channel. A slow viewer costs nothing but its offset; when the ring has
//! moved past it, it is resynced with a screen redraw. Every viewer therefore sees the same bytes
//! in the same order, and none can hold up the PTY or another viewer.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;

use super::super::screen::TermSize;
use super::{ExitInfo, Session, SessionStatus, State, ViewerCount};

/// The most output handed to a viewer in one event.
pub const MAX_OUTPUT_CHUNK: usize = 64 * 1024;

/// Where a new viewer's stream starts.
#[derive(Debug, Clone, Copy)]
pub enum AttachFrom {
    /// A redraw of the current screen, then live output.
    Screen,
    /// Exactly the output after this offset when it is still in memory, else a redraw.
    Offset(u64),
    /// The recent output (see `Session::recent_output`), then live output.
    RecentOutput,
}

/// What a viewer gets first.
#[derive(Debug)]
pub struct AttachStart {
    /// The offset its live output starts at.
    pub offset: u64,
    /// A redraw of the screen as of `offset`, when it starts from the screen.
    pub redraw: Option<Vec<u8>>,
    /// The offset it asked for, when that was no longer in memory and it got a redraw instead.
    pub missed: Option<u64>,
    /// The recent output before `offset` (for `AttachFrom::RecentOutput`).
    pub recent: Vec<u8>,
}

/// What happened next, for one viewer.
#[derive(Debug)]
pub enum ViewerEvent {
    /// Output bytes that start at `offset`.
    Output { offset: u64, bytes: Bytes },
    /// The viewer fell behind the ring: output from `missed` was skipped; `redraw` is the screen
    /// as of `offset`, where output continues.
    Resync {
        missed: u64,
        offset: u64,
        redraw: Bytes,
    },
    /// The terminal was resized.
    Resize(TermSize),
    /// The program is gone and the viewer has every byte before its exit.
    Exit {
        status: SessionStatus,
        exit: ExitInfo,
    },
}

/// One attached viewer. Counts in the session's `wsClients` while alive.
pub struct Viewer {
    session: Arc<Session>,
    changes: watch::Receiver<u64>,
    offset: u64,
    size: TermSize,
    exit_sent: bool,
    _count: ViewerCount,
}

impl Session {
    /// Attaches a viewer. Subscribing and taking the start under the output lock means nothing
    /// falls between the start and the first event.
    pub async fn attach(self: &Arc<Self>, from: AttachFrom) -> (Viewer, AttachStart) {
        let changes = self.subscribe();
        let (mut start, size, read_recent) = self.attach_start(from);
        if read_recent {
            // A finished session gets no more output: its recent output (from the transcript)
            // may be read after the lock is let go.
            start.recent = self.recent_output().await.1;
        }
        let viewer = Viewer {
            session: self.clone(),
            changes,
            offset: start.offset,
            size,
            exit_sent: false,
            _count: self.viewer_guard(),
        };
        (viewer, start)
    }

    /// Where a viewer starts, under the lock; also whether its recent output is still to read.
    fn attach_start(&self, from: AttachFrom) -> (AttachStart, TermSize, bool) {
        let mut state = self.lock_state();
        let total = state.log.total();
        let redraw_start = |state: &mut State, missed| AttachStart {
            offset: total,
            redraw: Some(state.screen.redraw()),
            missed,
            recent: Vec::new(),
        };
        let finished = state.screen.is_finished();
        let start = match from {
            AttachFrom::Screen => redraw_start(&mut state, None),
            AttachFrom::Offset(offset) if offset >= state.log.ring_start() && offset <= total => {
                AttachStart {
                    offset,
                    redraw: None,
                    missed: None,
                    recent: Vec::new(),
                }
            }
            AttachFrom::Offset(offset) => redraw_start(&mut state, Some(offset)),
            AttachFrom::RecentOutput => AttachStart {
                offset: total,
                redraw: None,
                missed: None,
                recent: if finished {
                    Vec::new()
                } else {
                    state.log.recent().1
                },
            },
        };
        let read_recent = finished && matches!(from, AttachFrom::RecentOutput);
        (start, state.size, read_recent)
    }
}

impl Viewer {
    /// The session being viewed.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// The offset of the next byte this viewer will get.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Waits for the next event; `None` after the exit was delivered.
    pub async fn next(&mut self) -> Option<ViewerEvent> {
        loop {
            if self.exit_sent {
                return None;
            }
            // Marked seen before looking, so a change made while we look still wakes us.
            self.changes.borrow_and_update();
            if let Some(event) = self.poll_state() {
                return Some(event);
            }
            if self.changes.changed().await.is_err() {
                return None;
            }
        }
    }

    fn poll_state(&mut self) -> Option<ViewerEvent> {
        let mut state = self.session.lock_state();
        if state.size != self.size {
            self.size = state.size;
            return Some(ViewerEvent::Resize(state.size));
        }
        let total = state.log.total();
        if self.offset < state.log.ring_start() {
            let missed = self.offset;
            self.offset = total;
            return Some(ViewerEvent::Resync {
                missed,
                offset: total,
                redraw: state.shared_redraw(),
            });
        }
        if self.offset < total {
            let offset = self.offset;
            let bytes = state.output_from(offset, MAX_OUTPUT_CHUNK);
            self.offset += bytes.len() as u64;
            return Some(ViewerEvent::Output { offset, bytes });
        }
        if let Some(exit) = &state.exit {
            self.exit_sent = true;
            return Some(ViewerEvent::Exit {
                status: state.status,
                exit: exit.clone(),
            });
        }
        None
    }
}
