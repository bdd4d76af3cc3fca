//! The server's end of the hooks' channel: `DATA_DIR/hooks.sock`, a Unix datagram socket (mode
//! 0600 in the 0700 data directory) read by one thread. Each datagram is one report (see
//! `hook.rs`); it counts only when its secret is the named session's (checked by the caller).
//! Reports that are not JSON, too large or unknown are dropped.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use super::report::Report;

/// The socket, below the data directory.
pub const SOCKET: &str = "hooks.sock";

/// The largest report accepted.
const MAX_REPORT: usize = 64 * 1024;

/// Binds the socket of `data_dir` and hands each report to `deliver` on a thread of its own,
/// for as long as `deliver` returns true. Returns the socket's path.
pub fn listen(
    data_dir: &Path,
    mut deliver: impl FnMut(Report) -> bool + Send + 'static,
) -> Result<PathBuf, String> {
    let path = data_dir.join(SOCKET);
    let cannot = |e: std::io::Error| format!("cannot listen on {}: {e}", path.display());
    if std::fs::symlink_metadata(&path).is_ok() {
        std::fs::remove_file(&path).map_err(cannot)?;
    }
    let socket = UnixDatagram::bind(&path).map_err(cannot)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(cannot)?;
    std::thread::Builder::new()
        .name("agent-hooks".into())
        .spawn(move || {
            let mut buf = vec![0u8; MAX_REPORT];
            loop {
                let Ok(len) = socket.recv(&mut buf) else {
                    continue;
                };
                let Ok(report) = serde_json::from_slice::<Report>(&buf[..len]) else {
                    continue;
                };
                if !deliver(report) {
                    return;
                }
            }
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    Ok(path)
}
