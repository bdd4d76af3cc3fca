//! Which ready PTYs are read now and which wait ("parked", out of the epoll set's events):
//! hot ones wait while the server has a backlog of the keeper's output, and — while somebody
//! types — those of sessions not typed into wait for the bulk budget (see `bulk.rs`). A parked
//! PTY fills up and its program waits on it: nothing is lost.

use std::time::Instant;

use nix::poll::PollTimeout;
use nix::sys::epoll::{EpollEvent, EpollFlags};

use super::super::connection::Connection;
use super::{Read, Sessions};

/// PTYs with output served per round.
const EVENTS_PER_ROUND: usize = 64;
/// While the server has more than this (in socket buffer terms) of the keeper's output still to
/// take, hot PTYs wait out of the epoll set ("parked") and only the others are read: a
/// keystroke's echo then queues behind at most this much flood output, instead of behind
/// everything the floods could print. (The floods' programs wait on full PTYs; nothing is lost.)
const HOT_BACKLOG: usize = 64 * 1024;

impl Sessions {
    /// Reads the watched PTYs that have output (one chunk each) and sends it on, until the
    /// server's socket is full; hot ones only while the server's backlog is small (see
    /// `HOT_BACKLOG`) and the bulk budget allows (see `bulk.rs`), else they are parked.
    pub(in crate::keeper) fn read_ready(&mut self, server: &mut Connection) {
        let mut events = [EpollEvent::empty(); EVENTS_PER_ROUND];
        let ready = match self.epoll.wait(&mut events, PollTimeout::ZERO) {
            Ok(ready) => ready,
            Err(_) => return,
        };
        // Asked of the kernel only once a hot PTY is ready (not on a keystroke's echo).
        let mut backlog = None;
        for event in &events[..ready] {
            if !server.is_idle() || server.is_broken() {
                // The rest stay ready and are read next time.
                return;
            }
            let slot = event.data() as usize;
            let Some(held) = self.slots.get(slot).and_then(Option::as_ref) else {
                continue;
            };
            let now = Instant::now();
            if held.hot
                && ((held.prints_in_bulk(now) && !self.budget.allows_hot_read(now))
                    || *backlog.get_or_insert_with(|| server.unsent_bytes()) > HOT_BACKLOG)
            {
                self.park(slot);
                continue;
            }
            if let (Read::Bytes(n), Some(backlog)) = (self.read(slot, server), backlog.as_mut()) {
                *backlog += n;
            }
        }
    }

    /// Somebody typed into session `id`: its output goes ahead of bulk output for a while.
    pub(in crate::keeper) fn typed(&mut self, id: &str) {
        let now = Instant::now();
        if let Some(held) = self.slot(id).and_then(|slot| self.slots[slot].as_mut()) {
            held.typed_at = Some(now);
            self.budget.typed(now);
        }
    }

    /// Whether some PTY is parked (the keeper then looks again soon).
    pub(in crate::keeper) fn has_parked(&self) -> bool {
        !self.parked.is_empty()
    }

    /// Takes the PTY in `slot` out of the epoll set's events, keeping it watched.
    fn park(&mut self, slot: usize) {
        let Some(held) = self.slots[slot].as_mut() else {
            return;
        };
        let Some(master) = held
            .master
            .as_ref()
            .filter(|_| held.watched && !held.parked)
        else {
            return;
        };
        let mut none = EpollEvent::new(EpollFlags::empty(), slot as u64);
        if self.epoll.modify(master, &mut none).is_ok() {
            held.parked = true;
            self.parked.push(slot);
        }
    }

    /// Puts the parked PTYs back once the server has taken most of its backlog and the bulk
    /// budget allows a read.
    pub(in crate::keeper) fn unpark_if_drained(&mut self, server: &Connection) {
        if self.parked.is_empty() || server.unsent_bytes() > HOT_BACKLOG / 2 {
            return;
        }
        let now = Instant::now();
        let bulk_allowed = self.budget.allows_hot_read(now);
        let mut still_parked = Vec::new();
        for slot in std::mem::take(&mut self.parked) {
            let Some(held) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            if !held.parked || !held.watched {
                continue;
            }
            if !bulk_allowed && held.prints_in_bulk(now) {
                still_parked.push(slot);
                continue;
            }
            held.parked = false;
            if let Some(master) = &held.master {
                let mut readable = EpollEvent::new(EpollFlags::EPOLLIN, slot as u64);
                let _ = self.epoll.modify(master, &mut readable);
            }
        }
        self.parked = still_parked;
    }
}
