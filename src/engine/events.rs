//! The event feed: what happens in sessions (created, output, busy/idle, title, bell, resize,
//! exit, removed), each event with an id that only grows, kept in a bounded ring so a subscriber
//! can resume after the last id it saw.
//!
//! Ids are unique across restarts of the server: they start at the start time in milliseconds
//! times 1,000, so a later run's ids are above an earlier run's unless it published more than
//! a million events a second. Sessions publish their events as they happen (see
//! `session/activity.rs`); output and busy/idle come from the engine's `ACTIVITY_TICK`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::screen::TermSize;
use super::session::SessionStatus;

/// Events kept for resuming subscribers.
pub const EVENT_RING_CAPACITY: usize = 10_000;
/// How often the activity monitor looks at the sessions.
pub const ACTIVITY_TICK: Duration = Duration::from_millis(100);

/// One thing that happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: u64,
    pub session: String,
    pub at: SystemTime,
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    Created,
    /// A server started again took over the running session (see `Restarts and upgrades`).
    Adopted,
    /// `length` bytes of output from `offset`.
    Output {
        offset: u64,
        length: u64,
    },
    Busy,
    Idle,
    Title(String),
    /// The bell rang; `count` is the session's total.
    Bell {
        count: u64,
    },
    Resize(TermSize),
    Exit {
        status: SessionStatus,
        code: Option<i32>,
        signal: Option<String>,
        reason: Option<super::ExitReason>,
    },
    /// The record expired and is gone.
    Removed,
    /// The agent's state changed.
    Agent(crate::agent::Agent),
}

/// The events a subscriber asked for are partly gone from the ring, or were never this run's
/// (an id above the newest: the client saw an earlier run, or made it up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missed {
    /// The oldest id still kept.
    pub oldest: u64,
}

/// The ring of recent events and a wake-up for subscribers.
pub struct EventBus {
    ring: Mutex<Ring>,
    latest: watch::Sender<u64>,
    /// Sessions with activity for the next tick to report: output since the last tick, or busy
    /// until they go idle. The tick looks at these only, so idle sessions cost it nothing.
    stirring: Mutex<Vec<String>>,
}

struct Ring {
    events: VecDeque<Event>,
    next_id: u64,
}

impl Default for EventBus {
    fn default() -> Self {
        let millis = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        Self::starting_at(millis.saturating_mul(1000).max(1))
    }
}

impl EventBus {
    /// A bus whose first event gets id `first`.
    pub fn starting_at(first: u64) -> Self {
        Self {
            ring: Mutex::new(Ring {
                events: VecDeque::new(),
                next_id: first,
            }),
            latest: watch::channel(first - 1).0,
            stirring: Mutex::new(Vec::new()),
        }
    }

    /// Puts session `id` on the next activity tick's list (the session makes sure it is there
    /// once).
    pub fn stir(&self, id: &str) {
        self.stirring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(id.to_owned());
    }

    /// The sessions on the activity tick's list, emptying it.
    pub fn take_stirring(&self) -> Vec<String> {
        std::mem::take(&mut *self.stirring.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Records an event and wakes subscribers.
    pub fn publish(&self, session: &str, kind: EventKind) {
        let id = {
            let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
            let id = ring.next_id;
            ring.next_id += 1;
            if ring.events.len() == EVENT_RING_CAPACITY {
                ring.events.pop_front();
            }
            ring.events.push_back(Event {
                id,
                session: session.to_owned(),
                at: SystemTime::now(),
                kind,
            });
            id
        };
        self.latest.send_replace(id);
    }

    /// A receiver woken after every publish.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// The id of the newest event (one below the first before any).
    pub fn latest_id(&self) -> u64 {
        *self.latest.borrow()
    }

    /// Up to `max` events after `after` (of one session, if given) and the id to continue after,
    /// or `Missed` when events after `after` are no longer kept.
    pub fn after(
        &self,
        after: u64,
        session: Option<&str>,
        max: usize,
    ) -> Result<(Vec<Event>, u64), Missed> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let oldest = ring.events.front().map_or(ring.next_id, |e| e.id);
        if after + 1 < oldest || after >= ring.next_id {
            return Err(Missed { oldest });
        }
        let skip = (after + 1 - oldest) as usize;
        let mut events = Vec::new();
        let mut scanned_to = after;
        for event in ring.events.iter().skip(skip) {
            if events.len() == max {
                break;
            }
            scanned_to = event.id;
            if session.is_none_or(|s| event.session == s) {
                events.push(event.clone());
            }
        }
        Ok((events, scanned_to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_grow_and_old_events_are_missed() {
        let bus = EventBus::starting_at(1);
        for _ in 0..EVENT_RING_CAPACITY + 5 {
            bus.publish("a", EventKind::Busy);
        }
        bus.publish("b", EventKind::Created);
        let latest = bus.latest_id();
        assert_eq!(latest, EVENT_RING_CAPACITY as u64 + 6);
        assert_eq!(bus.after(0, None, 10), Err(Missed { oldest: 7 }));
        let (first, next) = bus.after(6, None, 3).unwrap();
        assert_eq!(first.iter().map(|e| e.id).collect::<Vec<_>>(), [7, 8, 9]);
        assert_eq!(next, 9);
        let (only_b, next) = bus.after(6, Some("b"), 100_000).unwrap();
        assert_eq!(only_b.len(), 1);
        assert_eq!(only_b[0].kind, EventKind::Created);
        assert_eq!(next, latest);
        assert_eq!(bus.after(latest, None, 10).unwrap(), (Vec::new(), latest));
        assert_eq!(bus.after(latest + 1, None, 10), Err(Missed { oldest: 7 }));
    }

    #[test]
    fn a_later_run_starts_above_an_earlier_one() {
        let earlier = EventBus::default();
        for _ in 0..5000 {
            earlier.publish("a", EventKind::Busy);
        }
        std::thread::sleep(Duration::from_millis(10));
        assert!(EventBus::default().latest_id() > earlier.latest_id());
    }
}
