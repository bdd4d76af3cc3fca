//! The sessions the keeper holds: each program started on a new PTY, its output read while the
//! server watches it — appended to its transcript first, then sent — each leader's end noticed
//! (after the output before it) and the leader reaped when the server says so. Which ready
//! PTYs are read now and which wait is `pacing.rs`.
//!
//! Reading here rather than in the server is what makes output exactly-once whatever happens
//! to the server: a PTY read takes the bytes out of the PTY, and the process that reads them
//! must not die before they are recorded. The keeper outlives servers; a byte it read is in the
//! transcript before any server sees it, and a server that died before taking what was sent
//! finds it there.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::pty::{Winsize, openpty};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;

use super::bulk::{BulkBudget, HOT_READ, typed_lately};
use super::connection::Connection;
use super::launcher::Launcher;
use super::transcripts::Transcripts;
use super::wire::{self, Exit, Reply};

mod pacing;

/// The most output read from one PTY at a time (then the others get their turn).
const READ_CHUNK: usize = 64 * 1024;

struct Held {
    id: String,
    pid: u32,
    /// Let go once the server is done with the session (a program still running is then hung
    /// up, as by a terminal closing).
    master: Option<OwnedFd>,
    transcript: PathBuf,
    /// Bytes of output read so far.
    offset: u64,
    /// The server wants its output: the master is in the epoll set.
    watched: bool,
    /// Its last read was `HOT_READ` or more.
    hot: bool,
    /// When somebody last typed into it (see `bulk.rs`).
    typed_at: Option<Instant>,
    /// In the epoll set but waiting (no events) until the server has taken its backlog.
    parked: bool,
    /// Every terminal side is closed: there is no more output.
    closed: bool,
    /// The transcript could not be written (said once; output goes on without it).
    transcript_failed: bool,
    exit: Option<Exit>,
    /// The server is done with it: reap it as soon as it has ended.
    reap_on_exit: bool,
    /// Not this keeper's child (adopted from a keeper that died): its end is never seen here,
    /// and it is forgotten as soon as the server is done with it.
    orphan: bool,
}

impl Held {
    /// It prints in bulk and nobody typed into it lately: its reads come from the bulk budget
    /// (see `bulk.rs`).
    fn prints_in_bulk(&self, now: Instant) -> bool {
        self.hot && !typed_lately(self.typed_at, now)
    }
}

/// What a read of a PTY found.
enum Read {
    Bytes(usize),
    Nothing,
    Closed,
}

/// Every session held.
pub(super) struct Sessions {
    slots: Vec<Option<Held>>,
    free: Vec<usize>,
    by_id: HashMap<String, usize>,
    /// The watched masters, by slot.
    epoll: Epoll,
    transcripts: Transcripts,
    buf: Vec<u8>,
    /// The slots of the parked PTYs.
    parked: Vec<usize>,
    /// How much the hot PTYs of sessions not typed into may read while somebody types.
    budget: BulkBudget,
    /// What starts the programs (see `launcher.rs`).
    launcher: Launcher,
}

impl Sessions {
    /// The sessions' holder, with its launcher: call it while the keeper holds few descriptors.
    pub(super) fn new() -> io::Result<Self> {
        let launcher = Launcher::start()?;
        Ok(Self {
            slots: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            transcripts: Transcripts::default(),
            buf: vec![0; READ_CHUNK],
            parked: Vec::new(),
            budget: BulkBudget::default(),
            launcher,
        })
    }

    pub(super) fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Readable when a watched PTY has output (or has closed).
    pub(super) fn readiness(&self) -> BorrowedFd<'_> {
        self.epoll.0.as_fd()
    }

    /// The slot of session `id`.
    fn slot(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// Starts a program and answers `Spawned` (with the master) or `Failed`.
    pub(super) fn spawn(&mut self, server: &mut Connection, request: wire::Spawn) {
        let started = spawn(&mut self.launcher, &request);
        let (pid, master) = match started {
            Ok(started) => started,
            Err(err) => {
                let failed = Reply::Failed {
                    id: request.id,
                    message: err.to_string(),
                    errno: err.raw_os_error(),
                };
                return server.message(&failed, &[]);
            }
        };
        let spawned = Reply::Spawned {
            id: request.id.clone(),
            pid,
        };
        server.message(&spawned, &[master.as_fd()]);
        let held = Held {
            id: request.id.clone(),
            pid,
            master: Some(master),
            transcript: PathBuf::from(request.transcript),
            offset: 0,
            watched: false,
            closed: false,
            transcript_failed: false,
            hot: false,
            typed_at: None,
            parked: false,
            exit: None,
            reap_on_exit: false,
            orphan: false,
        };
        self.insert(held);
    }

    /// Holds the PTY `master` of program `pid`, which another keeper started and lost.
    pub(super) fn adopt(
        &mut self,
        id: String,
        pid: u32,
        master: OwnedFd,
        transcript: String,
        offset: u64,
    ) {
        self.insert(Held {
            id,
            pid,
            master: Some(master),
            transcript: PathBuf::from(transcript),
            offset,
            watched: false,
            closed: false,
            transcript_failed: false,
            hot: false,
            typed_at: None,
            parked: false,
            exit: None,
            reap_on_exit: false,
            orphan: true,
        });
    }

    fn insert(&mut self, held: Held) {
        let id = held.id.clone();
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(held);
                slot
            }
            None => {
                self.slots.push(Some(held));
                self.slots.len() - 1
            }
        };
        self.by_id.insert(id, slot);
    }

    /// Answers `Held` for every session a server may take over (with its master), then `End`.
    pub(super) fn list(&self, server: &mut Connection) {
        for held in self.slots.iter().flatten() {
            let Some(master) = &held.master else {
                // Given up by its server: not to be taken over.
                continue;
            };
            let reply = Reply::Held {
                id: held.id.clone(),
                pid: held.pid,
                exit: held.exit.clone(),
                offset: held.offset,
                orphan: held.orphan,
            };
            server.message(&reply, &[master.as_fd()]);
        }
        server.message(&Reply::End, &[]);
    }

    /// Reads the session's output from now on; answers `Closed` if there is none to read.
    pub(super) fn watch(&mut self, server: &mut Connection, id: &str) {
        let Some((slot, held)) = self
            .slot(id)
            .and_then(|slot| Some((slot, self.slots[slot].as_mut()?)))
        else {
            return server.message(&Reply::Closed { id: id.to_owned() }, &[]);
        };
        let Some(master) = held.master.as_ref().filter(|_| !held.closed) else {
            return server.message(&Reply::Closed { id: id.to_owned() }, &[]);
        };
        if !held.watched {
            let event = EpollEvent::new(EpollFlags::EPOLLIN, slot as u64);
            if let Err(err) = self.epoll.add(master, event) {
                tracing::error!(%err, "cannot watch a PTY");
                return server.message(&Reply::Closed { id: id.to_owned() }, &[]);
            }
            held.watched = true;
        }
    }

    /// Stops reading the session's output; answers `Closed`.
    pub(super) fn unwatch(&mut self, server: &mut Connection, id: &str) {
        if let Some(held) = self.slot(id).and_then(|slot| self.slots[slot].as_mut()) {
            stop_watching(&self.epoll, held);
        }
        server.message(&Reply::Closed { id: id.to_owned() }, &[]);
    }

    /// The server is gone: no output is read until the next one watches.
    pub(super) fn unwatch_all(&mut self) {
        for held in self.slots.iter_mut().flatten() {
            stop_watching(&self.epoll, held);
        }
        self.parked.clear();
    }

    /// The server is done with the session: a program still running is hung up, and the
    /// leader is reaped once it has ended.
    pub(super) fn reap(&mut self, id: &str) {
        if let Some(slot) = self.slot(id)
            && let Some(held) = self.slots[slot].as_mut()
        {
            stop_watching(&self.epoll, held);
            held.reap_on_exit = true;
            held.master = None;
            self.transcripts.close(slot);
        }
        self.reap_ended();
    }

    /// Reads one chunk of the watched PTY in `slot`: into its transcript, then to the server.
    fn read(&mut self, slot: usize, server: &mut Connection) -> Read {
        let Some(held) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return Read::Closed;
        };
        let Some(master) = held.master.as_ref().filter(|_| held.watched) else {
            return Read::Closed;
        };
        let n = loop {
            match nix::unistd::read(master.as_raw_fd(), &mut self.buf) {
                Ok(n) => break n,
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return Read::Nothing,
                // EIO once every terminal side is closed.
                Err(_) => break 0,
            }
        };
        if n == 0 {
            stop_watching(&self.epoll, held);
            held.closed = true;
            self.transcripts.close(slot);
            server.message(
                &Reply::Closed {
                    id: held.id.clone(),
                },
                &[],
            );
            return Read::Closed;
        }
        held.hot = n >= HOT_READ;
        let now = Instant::now();
        if held.prints_in_bulk(now) {
            self.budget.spend(n, now);
        }
        let bytes = &self.buf[..n];
        if !held.transcript_failed
            && let Err(err) = self.transcripts.append(slot, &held.transcript, bytes)
        {
            tracing::error!(session = %held.id, %err, "transcript write failed; output goes on unrecorded");
            held.transcript_failed = true;
        }
        let at_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let header = wire::output_header(&held.id, held.offset, at_us);
        held.offset += n as u64;
        server.send(&[&header, bytes], &[]);
        Read::Bytes(n)
    }

    /// Records the end of every held leader that has ended (read without reaping it) and tells
    /// the server, after the output the program left in its PTY.
    pub(super) fn notice_exits(&mut self, mut server: Option<&mut Connection>) {
        for slot in 0..self.slots.len() {
            let Some(held) = self.slots[slot].as_mut().filter(|h| h.exit.is_none()) else {
                continue;
            };
            let Some(exit) = ended(held.pid) else {
                continue;
            };
            held.exit = Some(exit.clone());
            if held.reap_on_exit {
                continue;
            }
            let id = held.id.clone();
            if let Some(server) = server.as_deref_mut() {
                while let Read::Bytes(_) = self.read(slot, server) {}
                server.message(&Reply::Exited { id, exit }, &[]);
            }
        }
    }

    /// Reaps the leaders that have ended and that the server is done with, letting their PTYs
    /// go.
    pub(super) fn reap_ended(&mut self) {
        for slot in 0..self.slots.len() {
            let done = self.slots[slot]
                .as_ref()
                .is_some_and(|held| held.reap_on_exit && (held.exit.is_some() || held.orphan));
            if !done {
                continue;
            }
            if let Some(held) = self.slots[slot].take() {
                if !held.orphan {
                    let _ = waitpid(Pid::from_raw(held.pid as i32), None);
                }
                self.by_id.remove(&held.id);
                self.transcripts.close(slot);
                self.free.push(slot);
            }
        }
    }
}

fn stop_watching(epoll: &Epoll, held: &mut Held) {
    if held.watched {
        if let Some(master) = &held.master {
            let _ = epoll.delete(master);
        }
        held.watched = false;
        // Out of the set: nothing to put back (a stale slot in `parked` is skipped).
        held.parked = false;
    }
}

/// How the leader `pid` ended, if it has (read without reaping it).
fn ended(pid: u32) -> Option<Exit> {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::Pid(Pid::from_raw(pid as i32)), flags) {
        Ok(WaitStatus::Exited(_, code)) => Some(Exit {
            code: Some(code),
            signal: None,
        }),
        Ok(WaitStatus::Signaled(_, signal, _)) => Some(Exit {
            code: None,
            signal: Some(signal.as_str().to_owned()),
        }),
        _ => None,
    }
}

/// Starts the program asked for on a new PTY (through the launcher); returns its pid and the
/// PTY's master (non-blocking).
fn spawn(launcher: &mut Launcher, request: &wire::Spawn) -> io::Result<(u32, OwnedFd)> {
    let size = Winsize {
        ws_row: request.rows,
        ws_col: request.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(&size, None)?;
    for fd in [&pty.master, &pty.slave] {
        nix::fcntl::fcntl(
            fd.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )?;
    }
    // Shared with the server's descriptor (one open file): its writes are asynchronous too.
    nix::fcntl::fcntl(
        pty.master.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )?;
    let tty = nix::unistd::ttyname(&pty.slave)?;
    let pid = launcher.launch(&tty, request)?;
    // Only the program holds the terminal side: it gets EOF/SIGHUP as a terminal's would.
    drop(pty.slave);
    Ok((pid, pty.master))
}
