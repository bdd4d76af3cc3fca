//! The keeper's connection to its server: what the keeper says goes out in order and never
//! waits for the server. A packet the socket has no room for waits here (with duplicates of the
//! descriptors it carries); while anything waits, the keeper reads no more output (the
//! programs' output then waits in their PTYs), so what waits here stays small.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use serde::Serialize;

use super::wire;

/// The connected server.
pub(super) struct Connection {
    socket: OwnedFd,
    /// Packets for the server that it has not taken yet.
    waiting: VecDeque<Packet>,
    /// Sending failed: the server is gone.
    broken: bool,
}

struct Packet {
    body: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl Connection {
    pub(super) fn new(socket: OwnedFd) -> Self {
        Self {
            socket,
            waiting: VecDeque::new(),
            broken: false,
        }
    }

    pub(super) fn socket(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Whether everything was sent.
    pub(super) fn is_idle(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Bytes sent that the server has not taken yet (`SIOCOUTQ`, in the kernel's accounting:
    /// payload plus per-packet overhead).
    pub(super) fn unsent_bytes(&self) -> usize {
        let mut queued: libc::c_int = 0;
        // SAFETY: SIOCOUTQ writes one int to the pointer given.
        let ok = unsafe { libc::ioctl(self.socket.as_raw_fd(), libc::TIOCOUTQ, &mut queued) } == 0;
        if ok { queued.max(0) as usize } else { 0 }
    }

    /// Whether the server is gone (a send failed).
    pub(super) fn is_broken(&self) -> bool {
        self.broken
    }

    /// The server is gone, or must be let go.
    pub(super) fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// Sends `message` with `fds`: now if nothing waits and the socket has room, else later.
    pub(super) fn message(&mut self, message: &impl Serialize, fds: &[BorrowedFd]) {
        match wire::encode(message) {
            Ok(body) => self.send(&[&body], fds),
            Err(err) => tracing::error!(%err, "a message too large for the server was not sent"),
        }
    }

    /// Sends the packet made of `parts`, with `fds`: now if nothing waits and the socket has
    /// room, else later.
    pub(super) fn send(&mut self, parts: &[&[u8]], fds: &[BorrowedFd]) {
        if self.broken {
            return;
        }
        if self.waiting.is_empty() {
            let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
            match wire::send_packet(self.socket.as_raw_fd(), parts, &raw, false) {
                Ok(()) => return,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    self.broken = true;
                    return;
                }
            }
        }
        let fds = fds.iter().map(|fd| fd.try_clone_to_owned()).collect();
        match fds {
            Ok(fds) => self.waiting.push_back(Packet {
                body: parts.concat(),
                fds,
            }),
            // Out of descriptors: the server cannot be told, so it is let go.
            Err(_) => self.broken = true,
        }
    }

    /// Sends what waits, as far as the socket has room.
    pub(super) fn flush(&mut self) {
        while let Some(packet) = self.waiting.front() {
            let raw: Vec<RawFd> = packet.fds.iter().map(|fd| fd.as_raw_fd()).collect();
            match wire::send_packet(self.socket.as_raw_fd(), &[&packet.body], &raw, false) {
                Ok(()) => {
                    self.waiting.pop_front();
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.broken = true;
                    return;
                }
            }
        }
    }
}
