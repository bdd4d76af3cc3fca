//! Reading a session's recent output: from the in-memory ring while the session runs, from the
//! transcript on disk once it has finished (a finished session keeps only a small tail in
//! memory). Disk reads happen outside the session lock, off the async workers.

use std::fs::File;

use super::super::output;
use super::Session;

/// Bytes of output a finished session keeps in memory (the rest is read from its transcript).
pub const FINISHED_TAIL_BYTES: usize = 16 * 1024;

impl Session {
    /// The recent output: the last ring's worth of bytes (see `OUTPUT_BUFFER_SIZE`), from where
    /// it starts.
    pub async fn recent_output(&self) -> (u64, Vec<u8>) {
        self.output_window(None).await
    }

    /// At least the output's last `lines` lines (and the one being written) within the recent
    /// output; a running session copies no more than that.
    pub async fn recent_output_lines(&self, lines: usize) -> Vec<u8> {
        {
            let state = self.lock_state();
            if !state.screen.is_finished() {
                return state.log.tail_lines(lines);
            }
        }
        self.output_window(None).await.1
    }

    /// The output from `from` (or from the start of the recent output, whichever is later) to
    /// the end, with the offset it starts at.
    pub(super) async fn output_window(&self, from: Option<u64>) -> (u64, Vec<u8>) {
        let (path, start, total) = {
            let state = self.lock_state();
            let total = state.log.total();
            let start = from
                .unwrap_or(0)
                .max(total.saturating_sub(self.ring_capacity as u64))
                .min(total);
            if let Some(bytes) = state.log.read_from(start, usize::MAX) {
                return (start, bytes);
            }
            // Older than what is in memory: the session has finished, its transcript is whole.
            (state.log.transcript_path().to_path_buf(), start, total)
        };
        let read = tokio::task::spawn_blocking(move || {
            output::read_transcript(&path, start, (total - start) as usize)
        })
        .await;
        match read {
            Ok(Ok(bytes)) => (start, bytes),
            Ok(Err(err)) => {
                tracing::warn!(session = %self.id, %err, "cannot read the transcript");
                (total, Vec::new())
            }
            Err(_) => (total, Vec::new()),
        }
    }

    /// The transcript, opened for reading (never through a symlink), and the bytes it holds.
    /// Blocking: call it off the async workers.
    pub fn open_transcript(&self) -> std::io::Result<(File, u64)> {
        let (path, total) = self.transcript();
        Ok((output::open_transcript(&path)?, total))
    }
}
