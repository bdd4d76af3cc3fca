//! Moving output from the PTY into the transcript so that no byte is lost or doubled, whenever
//! the server dies: the kernel moves each chunk PTY → pipe → transcript (`splice`), and the
//! server only then reads it back from the transcript for the ring and the screen. A read from
//! a PTY takes the bytes out of it, so a server killed between reading and writing would lose
//! them; here, until they are in the transcript, they sit in a pipe the keeper holds too, and
//! the next server moves them on first (`drain`). The transcript's length is therefore always
//! the offset where output goes on.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{SpliceFFlags, splice};

use crate::keeper::PtyFds;

/// What one session's reader reads through.
pub(super) struct Recorder {
    /// The PTY's master, shared with the session (input, resize).
    pty: Arc<OwnedFd>,
    pipe_read: OwnedFd,
    pipe_write: OwnedFd,
    transcript: File,
    /// Bytes in the transcript.
    recorded: u64,
    /// The transcript cannot be written (disk full): output goes on without it.
    failed: bool,
}

/// What a step of recording found.
pub(super) enum Recorded {
    /// These many bytes, now at the start of the buffer.
    Bytes(usize),
    /// The PTY has nothing now.
    Nothing,
    /// The PTY has no more output: every terminal side is closed.
    End,
}

impl Recorder {
    /// A recorder of the PTY of `fds` (its master is made non-blocking) into `transcript`,
    /// which holds `recorded` bytes already. Whatever an earlier server left in the pipe is
    /// recorded first. Returns the master too, for the session's other uses of the PTY.
    pub(super) fn new(
        fds: PtyFds,
        transcript: File,
        recorded: u64,
    ) -> io::Result<(Self, Arc<OwnedFd>)> {
        let pty = Arc::new(fds.master);
        let flags = nix::fcntl::fcntl(pty.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)?;
        nix::fcntl::fcntl(
            pty.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(
                nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK,
            ),
        )?;
        let mut recorder = Self {
            pty: pty.clone(),
            pipe_read: fds.pipe_read,
            pipe_write: fds.pipe_write,
            transcript,
            recorded,
            failed: false,
        };
        recorder.drain()?;
        Ok((recorder, pty))
    }

    /// Bytes in the transcript.
    pub(super) fn recorded(&self) -> u64 {
        self.recorded
    }

    /// The PTY, to wait on.
    pub(super) fn pty(&self) -> &OwnedFd {
        &self.pty
    }

    /// Records what the PTY has, up to `buf.len()` bytes, and copies it into `buf`.
    pub(super) fn record(&mut self, buf: &mut [u8]) -> io::Result<Recorded> {
        let taken = loop {
            match splice(
                self.pty.as_raw_fd(),
                None,
                self.pipe_write.as_raw_fd(),
                None,
                buf.len(),
                SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE,
            ) {
                Ok(0) => return Ok(Recorded::End),
                Ok(n) => break n,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Ok(Recorded::Nothing),
                // EIO once every terminal side is closed.
                Err(Errno::EIO) => return Ok(Recorded::End),
                Err(err) => return Err(err.into()),
            }
        };
        let start = self.recorded;
        if !self.failed
            && let Err(err) = self.drain()
        {
            tracing::error!(%err, "transcript write failed; output goes on unrecorded");
            self.failed = true;
        }
        // What reached the transcript is read back from it (a drain that failed midway may
        // have moved part of the chunk); what could not, straight from the pipe.
        let recorded = (self.recorded - start) as usize;
        self.transcript.read_exact_at(&mut buf[..recorded], start)?;
        let piped = if self.failed {
            self.read_pipe(&mut buf[recorded..taken])?
        } else {
            0
        };
        Ok(Recorded::Bytes(recorded + piped))
    }

    /// Moves everything in the pipe into the transcript.
    fn drain(&mut self) -> io::Result<()> {
        loop {
            let mut at = self.recorded as i64;
            match splice(
                self.pipe_read.as_raw_fd(),
                None,
                self.transcript.as_raw_fd(),
                Some(&mut at),
                1 << 20,
                SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE,
            ) {
                Ok(0) | Err(Errno::EAGAIN) => return Ok(()),
                Ok(n) => self.recorded += n as u64,
                Err(Errno::EINTR) => {}
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Without a transcript: the pipe's bytes straight into `buf`; how many.
    fn read_pipe(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match nix::unistd::read(self.pipe_read.as_raw_fd(), &mut buf[done..]) {
                Ok(0) | Err(Errno::EAGAIN) => break,
                Ok(n) => done += n,
                Err(Errno::EINTR) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(done)
    }

    /// Flushes the transcript to disk.
    pub(super) fn sync(&self) {
        if let Err(err) = self.transcript.sync_data() {
            tracing::warn!(%err, "transcript sync failed");
        }
    }
}
