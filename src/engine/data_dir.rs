//! The data directory: where transcripts live. Everything in it belongs to the server's user
//! alone. A directory someone else owns or may write to would let them list session ids, delete
//! transcripts, or swap a transcript for a symlink to a file only the server may read, so such a
//! directory is refused, as is one whose parent lets others rename it away (writable by group or
//! others without the sticky bit). Transcripts are opened with `O_NOFOLLOW` besides.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Where transcripts are kept, below the data directory.
pub const TRANSCRIPTS: &str = "transcripts";

/// Creates the data directory and its `transcripts/` (mode 0700) if missing, and checks that
/// both are the server's user's alone. `Err` is a message naming what is wrong.
pub fn prepare(dir: &Path) -> Result<(), String> {
    let transcripts = dir.join(TRANSCRIPTS);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&transcripts)
        .map_err(|e| format!("cannot create the data directory {}: {e}", dir.display()))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        check_parent(parent, dir)?;
    }
    check_own(dir, "data directory")?;
    check_own(&transcripts, "transcripts directory")?;
    // Ours: nobody else needs to see even the names of the transcripts.
    let _ = std::fs::set_permissions(&transcripts, std::fs::Permissions::from_mode(0o700));
    Ok(())
}

/// `path` is a directory (or a symlink to one that the server's user made) owned by the
/// server's user and writable by nobody else.
fn check_own(path: &Path, what: &str) -> Result<(), String> {
    let me = nix::unistd::geteuid().as_raw();
    let link = std::fs::symlink_metadata(path)
        .map_err(|e| format!("cannot inspect the {what} {}: {e}", path.display()))?;
    if link.file_type().is_symlink() && link.uid() != me {
        return Err(format!(
            "the {what} {} is a symlink made by uid {}, not by this server's user (uid {me}): \
             refusing to use it",
            path.display(),
            link.uid()
        ));
    }
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot inspect the {what} {}: {e}", path.display()))?;
    if !meta.is_dir() {
        return Err(format!("the {what} {} is not a directory", path.display()));
    }
    if meta.uid() != me {
        return Err(format!(
            "the {what} {} is owned by uid {}, not by this server's user (uid {me}): refusing \
             to use it; choose another with MONKEYPROOF_DATA_DIR",
            path.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "the {what} {} is writable by others (mode {:o}): refusing to use it; \
             chmod 700 it",
            path.display(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Others cannot rename `dir` away through its parent.
fn check_parent(parent: &Path, dir: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(parent)
        .map_err(|e| format!("cannot inspect {}: {e}", parent.display()))?;
    let sticky = meta.mode() & 0o1000 != 0;
    if meta.mode() & 0o022 != 0 && !sticky {
        return Err(format!(
            "the data directory {} is in {}, which others may write to (mode {:o}, not \
             sticky): refusing to use it",
            dir.display(),
            parent.display(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}
