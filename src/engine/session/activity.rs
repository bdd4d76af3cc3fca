//! The events a session publishes to the engine's feed.
//!
//! What happens at one moment is published where it happens, exactly once and in order:
//! title changes and bells by the reader, resizes by `resize`, the exit by the exit task (after
//! the output that came before it). Only what is a matter of time — output, coalesced, and
//! busy/idle — is published on the engine's activity tick, through `report_activity`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use super::super::events::EventKind;
use super::super::recording;
use super::{Session, lock};
use crate::store::{Mark, MarkKind};

/// What the feed has been told of this session so far.
#[derive(Debug, Default)]
pub(super) struct Reported {
    /// Output up to this offset has been reported.
    offset: u64,
    busy: bool,
    pub(super) throttle: super::throttle::Throttle,
}

impl Reported {
    /// Output up to `offset` counts as reported (a restored session's, reported by the server
    /// that ran it).
    pub(super) fn up_to(offset: u64) -> Self {
        Self {
            offset,
            busy: false,
            throttle: Default::default(),
        }
    }
}

impl Session {
    /// Notes for the session's recording that `kind` happened after the output up to `offset`,
    /// at `at` (see `store::timeline`).
    pub(crate) fn mark(&self, kind: MarkKind, offset: u64, at: SystemTime, data: String) {
        if let Some(timeline) = &self.timeline {
            let at_us = recording::micros(at);
            timeline.push(
                &self.id,
                Mark {
                    kind,
                    offset,
                    at_us,
                    data,
                },
            );
        }
    }

    /// Publishes `kind` as this session's event.
    pub(super) fn emit(&self, kind: EventKind) {
        self.events.publish(&self.id, kind);
    }

    /// Publishes one `output` event for the output not reported yet, so the events tile the
    /// output without gap or overlap.
    pub(super) fn report_output(&self) {
        // Held while publishing, so two reporters cannot publish their ranges out of order.
        let mut reported = lock(&self.reported);
        let total = self.lock_state().log.total();
        if total > reported.offset {
            self.emit(EventKind::Output {
                offset: reported.offset,
                length: total - reported.offset,
            });
            reported.offset = total;
        }
    }

    /// Puts the session on the activity tick's list, unless it is there already (called as
    /// output arrives).
    pub(super) fn stir(&self) {
        if !self.stirred.swap(true, Ordering::AcqRel) {
            self.events.stir(&self.id);
        }
    }

    /// The activity tick, for a session on its list: reports new output and busy/idle, and
    /// keeps the session on the list while it is busy (until it has gone idle).
    pub(crate) fn tick(self: &Arc<Self>, busy_window: Duration) {
        self.stirred.store(false, Ordering::Release);
        let busy = self.report_activity(busy_window);
        // One lock at a time: `report_output` takes `reported` before the state.
        let total = self.lock_state().log.total();
        self.throttle_tick(total, busy);
        // Busy, or output that came after the report, whose reader saw the session listed.
        if busy || total > lock(&self.reported).offset {
            self.stir();
        }
    }

    /// New output, and busy/idle (output within `busy_window` or not). Returns busy.
    fn report_activity(&self, busy_window: Duration) -> bool {
        self.report_output();
        let busy = {
            let state = self.lock_state();
            state.last_output_at.is_some() && self.quiet_for(state.last_output_at) < busy_window
        };
        let mut reported = lock(&self.reported);
        if busy != reported.busy {
            self.emit(if busy {
                EventKind::Busy
            } else {
                EventKind::Idle
            });
            reported.busy = busy;
        }
        busy
    }
}
