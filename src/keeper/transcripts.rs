//! The transcripts the keeper appends output to, open only while in use: a file is opened when
//! its session has output and closed again when more than `MAX_OPEN` are open (the longest
//! open first), so idle sessions hold no descriptor and 10,000 of them fit in an open-files
//! limit of 20,000 beside their PTYs.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Transcripts open at once, at most.
pub(super) const MAX_OPEN: usize = 256;

/// Open transcripts, by the slot of their session.
#[derive(Default)]
pub(super) struct Transcripts {
    open: HashMap<usize, File>,
    /// Slots in the order their files were opened (some closed since).
    order: VecDeque<usize>,
}

impl Transcripts {
    /// Appends `bytes` to the transcript at `path` of the session in `slot`.
    pub(super) fn append(&mut self, slot: usize, path: &Path, bytes: &[u8]) -> io::Result<()> {
        if !self.open.contains_key(&slot) {
            while self.open.len() >= MAX_OPEN {
                let Some(oldest) = self.order.pop_front() else {
                    break;
                };
                self.open.remove(&oldest);
            }
            // Never through a symlink: the server created the file, 0600, in its private
            // directory.
            let file = std::fs::OpenOptions::new()
                .append(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(path)?;
            self.open.insert(slot, file);
            self.order.push_back(slot);
            if self.order.len() > 2 * MAX_OPEN {
                let open = &self.open;
                self.order.retain(|slot| open.contains_key(slot));
            }
        }
        match self.open.get_mut(&slot) {
            Some(file) => file.write_all(bytes),
            None => Ok(()),
        }
    }

    /// Closes the transcript of the session in `slot`, if open.
    pub(super) fn close(&mut self, slot: usize) {
        self.open.remove(&slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_more_than_the_limit_are_open_and_every_byte_lands() {
        let dir = std::env::temp_dir().join(format!("mp-transcripts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut transcripts = Transcripts::default();
        let sessions = MAX_OPEN + 10;
        for round in 0..3 {
            for slot in 0..sessions {
                let path = dir.join(slot.to_string());
                if round == 0 {
                    File::create(&path).unwrap();
                }
                transcripts.append(slot, &path, &[b'a' + round]).unwrap();
                assert!(transcripts.open.len() <= MAX_OPEN);
            }
        }
        transcripts.close(sessions - 1);
        for slot in 0..sessions {
            assert_eq!(std::fs::read(dir.join(slot.to_string())).unwrap(), b"abc");
        }
        assert!(transcripts.order.len() <= 2 * MAX_OPEN + 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
