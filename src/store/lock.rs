//! One server per data directory: an exclusive `flock` on `server.lock`, held for the server's
//! life and released by the kernel however the server ends (even SIGKILL), so a stale lock
//! never needs cleaning up. The file names the holder's pid, for the refusal message.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The lock file, below the data directory.
pub const LOCK_FILE: &str = "server.lock";

/// Holds the data directory for this process until dropped.
pub struct InstanceLock {
    _file: File,
}

/// Opens the lock file at `path` (created 0600, never through a symlink) and tries to lock it;
/// `Ok(Err(file))` when another process holds it.
pub fn try_lock(path: &Path) -> std::io::Result<Result<File, File>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    // SAFETY: flock on a descriptor this function owns.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    Ok(if locked { Ok(file) } else { Err(file) })
}

impl InstanceLock {
    /// Takes the lock, or says which server holds it.
    pub fn take(data_dir: &Path) -> Result<Self, String> {
        let path = data_dir.join(LOCK_FILE);
        let locked = try_lock(&path)
            .map_err(|e| format!("cannot open the lock file {}: {e}", path.display()))?;
        let mut file = match locked {
            Ok(file) => file,
            Err(mut held) => {
                let mut holder = String::new();
                let _ = held.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {holder})")
                };
                return Err(format!(
                    "another monkeyproof server{holder} is using the data directory {}: stop \
                     it, or give this one its own MONKEYPROOF_DATA_DIR",
                    data_dir.display()
                ));
            }
        };
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        Ok(Self { _file: file })
    }
}
