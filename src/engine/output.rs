//! The output log: every byte a session's program writes, addressed by its byte offset from 0.
//!
//! Recent output lives in an in-memory ring (bounded, so a chatty program cannot exhaust memory);
//! the complete output is in a transcript file on disk, written by the keeper (`keeper/held.rs`)
//! before anything else sees it. Offsets never reset, so a viewer can say
//! "give me everything after byte N" and get exactly that, or learn that it has fallen out of the
//! ring.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Bytes of recent output kept in memory per session, per line of `OUTPUT_BUFFER_SIZE`.
///
/// The ring therefore holds at least `OUTPUT_BUFFER_SIZE` lines of up to this many bytes each
/// (about 1 MB for the default of 2,000 lines).
pub const RING_BYTES_PER_LINE: usize = 512;

/// The output of one session: an in-memory ring of recent bytes, and where the transcript is.
#[derive(Debug)]
pub struct OutputLog {
    ring: VecDeque<u8>,
    ring_capacity: usize,
    /// Offset of the first byte after everything ever appended.
    total: u64,
    /// Number of `\n` bytes ever appended.
    lines: u64,
    transcript_path: PathBuf,
}

impl OutputLog {
    /// Creates an empty log and its empty transcript at `transcript_path` (created 0600, never
    /// through a symlink; the keeper appends to it).
    pub fn create(transcript_path: &Path, ring_capacity: usize) -> io::Result<Self> {
        std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(transcript_path)?;
        Ok(Self::resumed(
            transcript_path.to_path_buf(),
            0,
            0,
            &[],
            ring_capacity,
        ))
    }

    /// The log of a transcript written before this server started (a session that ended, or
    /// one taken over): `total` bytes and `lines` newlines, of which `tail` are the last.
    pub fn resumed(
        transcript_path: PathBuf,
        total: u64,
        lines: u64,
        tail: &[u8],
        ring_capacity: usize,
    ) -> Self {
        let ring_capacity = ring_capacity.max(1);
        Self {
            ring: tail[tail.len().saturating_sub(ring_capacity)..]
                .iter()
                .copied()
                .collect(),
            ring_capacity,
            total,
            lines,
            transcript_path,
        }
    }

    /// Counts `bytes` (already in the transcript) and keeps them in the ring.
    pub fn append(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        self.lines += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        if bytes.len() >= self.ring_capacity {
            self.ring.clear();
            self.ring.extend(&bytes[bytes.len() - self.ring_capacity..]);
        } else {
            let overflow = (self.ring.len() + bytes.len()).saturating_sub(self.ring_capacity);
            self.ring.drain(..overflow);
            self.ring.extend(bytes);
        }
    }

    /// Offset just past the last byte appended: the total output size.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Offset of the oldest byte still in memory.
    pub fn ring_start(&self) -> u64 {
        self.total - self.ring.len() as u64
    }

    /// Number of newline bytes ever written.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Where the complete output is kept on disk.
    pub fn transcript_path(&self) -> &Path {
        &self.transcript_path
    }

    /// Up to `max` bytes starting at `from`, or `None` when `from` has left the ring.
    /// `from` past the end yields an empty vector.
    pub fn read_from(&self, from: u64, max: usize) -> Option<Vec<u8>> {
        if from < self.ring_start() {
            return None;
        }
        if from >= self.total {
            return Some(Vec::new());
        }
        let skip = (from - self.ring_start()) as usize;
        let len = self.ring.len().saturating_sub(skip).min(max);
        let (a, b) = self.ring.as_slices();
        let mut out = Vec::with_capacity(len);
        let end = skip + len;
        if skip < a.len() {
            out.extend_from_slice(&a[skip..end.min(a.len())]);
        }
        if end > a.len() {
            out.extend_from_slice(&b[skip.saturating_sub(a.len())..end - a.len()]);
        }
        Some(out)
    }

    /// Everything still in memory, with the offset it starts at.
    pub fn recent(&self) -> (u64, Vec<u8>) {
        let start = self.ring_start();
        (start, self.read_from(start, usize::MAX).unwrap_or_default())
    }

    /// The output in memory after its last `lines + 1` newlines: the last `lines` lines plus the
    /// one still being written, so a caller that wants only those does not copy the whole ring.
    pub fn tail_lines(&self, lines: usize) -> Vec<u8> {
        let (a, b) = self.ring.as_slices();
        // The newline before the wanted lines is the (lines + 1)-th from the end.
        let start = memchr::memrchr_iter(b'\n', b)
            .map(|i| a.len() + i)
            .chain(memchr::memrchr_iter(b'\n', a))
            .nth(lines)
            .map_or(0, |i| i + 1);
        self.read_from(self.ring_start() + start as u64, usize::MAX)
            .unwrap_or_default()
    }

    /// Keeps only the last `bytes` of the ring and gives the rest of its memory back (a finished
    /// session reads older output from the transcript).
    pub fn keep_tail(&mut self, bytes: usize) {
        let drop = self.ring.len().saturating_sub(bytes);
        self.ring.drain(..drop);
        self.ring.shrink_to_fit();
        self.ring_capacity = self.ring_capacity.min(bytes.max(1));
    }
}

/// Opens a transcript for reading, never through a symlink (someone who could swap the file for
/// a link must not make the server serve what the link points at).
pub fn open_transcript(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// The bytes and newlines in the transcript at `path`.
pub fn count_transcript(path: &Path) -> io::Result<(u64, u64)> {
    let mut file = open_transcript(path)?;
    let (mut bytes, mut lines) = (0u64, 0u64);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match io::Read::read(&mut file, &mut buf) {
            Ok(0) => return Ok((bytes, lines)),
            Ok(n) => {
                bytes += n as u64;
                lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// `len` bytes of the transcript at `path` from byte `from` (fewer if it is shorter).
pub fn read_transcript(path: &Path, from: u64, len: usize) -> io::Result<Vec<u8>> {
    let file = open_transcript(path)?;
    let mut out = vec![0u8; len];
    let mut done = 0;
    while done < len {
        match file.read_at(&mut out[done..], from + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    out.truncate(done);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(capacity: usize) -> (OutputLog, PathBuf, File) {
        let dir = std::env::temp_dir().join(format!("mp-output-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.log");
        let log = OutputLog::create(&path, capacity).unwrap();
        let transcript = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        (log, path, transcript)
    }

    /// What the keeper and the session do with output: into the transcript, then into the log.
    fn record(log: &mut OutputLog, transcript: &mut File, bytes: &[u8]) {
        io::Write::write_all(transcript, bytes).unwrap();
        log.append(bytes);
    }

    #[test]
    fn offsets_survive_ring_wraparound() {
        let (mut log, path, mut transcript) = log(8);
        record(&mut log, &mut transcript, b"0123\n");
        record(&mut log, &mut transcript, b"456789\n");
        assert_eq!(log.total(), 12);
        assert_eq!(log.lines(), 2);
        assert_eq!(log.ring_start(), 4);
        assert_eq!(log.read_from(3, 100), None);
        assert_eq!(log.read_from(4, 100).unwrap(), b"\n456789\n".to_vec());
        assert_eq!(log.read_from(10, 1).unwrap(), b"9".to_vec());
        assert_eq!(log.read_from(12, 10).unwrap(), Vec::<u8>::new());
        record(&mut log, &mut transcript, b"abcdefghijkl");
        assert_eq!(log.recent(), (16, b"efghijkl".to_vec()));
        assert_eq!(std::fs::read(&path).unwrap(), b"0123\n456789\nabcdefghijkl");
        assert_eq!(
            log.read_from(1000, 10).unwrap(),
            Vec::<u8>::new(),
            "past the end"
        );
        log.keep_tail(3);
        assert_eq!(log.recent(), (21, b"jkl".to_vec()));
        assert_eq!(read_transcript(&path, 12, 5).unwrap(), b"abcde".to_vec());
        assert_eq!(read_transcript(&path, 22, 100).unwrap(), b"kl".to_vec());
    }

    #[test]
    fn the_tail_starts_after_its_newline_across_the_ring_seam() {
        let (mut log, _path, _transcript) = log(16);
        log.append(b"aaaa\nbbbb\ncc");
        log.append(b"cc\ndd\nee");
        // In memory: "\nbbbb\ncccc\ndd\nee", wrapped inside the ring's storage.
        assert_eq!(log.tail_lines(0), b"ee".to_vec());
        assert_eq!(log.tail_lines(1), b"dd\nee".to_vec());
        assert_eq!(log.tail_lines(3), b"bbbb\ncccc\ndd\nee".to_vec());
        assert_eq!(log.tail_lines(4), log.recent().1);
        assert_eq!(log.tail_lines(100), log.recent().1);
    }
}
