//! A session as an asciicast recording (v3, or v2 for older players): the transcript cut at the
//! marks of when its parts were read (`store::timeline`), with the resizes and the exit. Times
//! are when the server read the bytes, so output a program wrote while no server ran shows at the
//! moment the next server read it; output after the last mark (a server killed within the
//! timeline's batch interval) shows at the last known time.

use std::os::unix::fs::FileExt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::screen::{TermSize, after_held, incomplete_char_len};
use super::session::Session;
use crate::store::{Mark, MarkKind};

/// The asciicast versions served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CastVersion {
    /// Events carry the interval since the previous one; `x` ends it with the exit status.
    V3,
    /// Events carry the time since the start; no exit event.
    V2,
}

/// Output read from the transcript per event, at most.
const MAX_EVENT_BYTES: u64 = 256 * 1024;

/// Writes session's recording, a line at a time, to `line` (which returns `false` to stop).
/// Blocking: it reads the transcript.
pub fn render(
    session: &Session,
    marks: &[Mark],
    version: CastVersion,
    line: &mut dyn FnMut(String) -> bool,
) -> std::io::Result<()> {
    let (transcript, total) = session.open_transcript()?;
    let start_us = micros(session.created_at);
    let snapshot = session.snapshot();
    let first = marks
        .iter()
        .find(|m| m.kind == MarkKind::Resize)
        .and_then(|m| parse_size(&m.data))
        .unwrap_or(snapshot.size);
    let (cols, rows) = (first.cols, first.rows);
    let command = &session.command_line;
    let header = match version {
        CastVersion::V3 => json!({
            "version": 3,
            "term": {"cols": cols, "rows": rows, "type": "xterm-256color"},
            "timestamp": start_us / 1_000_000,
            "command": command,
        }),
        CastVersion::V2 => json!({
            "version": 2,
            "width": cols,
            "height": rows,
            "timestamp": start_us / 1_000_000,
            "command": command,
            "env": {"TERM": "xterm-256color"},
        }),
    };
    if !line(header.to_string()) {
        return Ok(());
    }
    let mut events = Events {
        version,
        start_us,
        last_us: start_us,
        written: 0,
        held: Vec::new(),
        transcript: &transcript,
        line,
        stopped: false,
    };
    let mut sized = false;
    for mark in marks.iter().filter(|m| m.offset <= total) {
        match mark.kind {
            MarkKind::Output => events.output_to(mark.offset, mark.at_us)?,
            MarkKind::Resize if !sized && mark.offset == 0 => {}
            MarkKind::Resize => {
                events.output_to(mark.offset, mark.at_us)?;
                events.event(mark.at_us, "r", Value::String(mark.data.clone()));
            }
            MarkKind::Input => {
                events.output_to(mark.offset, mark.at_us)?;
                events.event(mark.at_us, "i", Value::String(mark.data.clone()));
            }
        }
        sized |= mark.kind == MarkKind::Resize;
    }
    let end_us = snapshot.ended_at.map(micros).unwrap_or(events.last_us);
    events.output_to(total, events.last_us)?;
    if !events.held.is_empty() {
        let rest = String::from_utf8_lossy(&events.held).into_owned();
        events.event(events.last_us, "o", Value::String(rest));
    }
    if version == CastVersion::V3
        && let Some(exit) = &snapshot.exit
    {
        let status = exit.code.or_else(|| {
            exit.signal
                .as_deref()
                .and_then(signal_number)
                .map(|n| 128 + n)
        });
        if let Some(status) = status {
            events.event(end_us, "x", Value::String(status.to_string()));
        }
    }
    Ok(())
}

struct Events<'a> {
    version: CastVersion,
    start_us: i64,
    last_us: i64,
    /// Transcript bytes already in events.
    written: u64,
    /// The start of a UTF-8 character whose rest is in the next event.
    held: Vec<u8>,
    transcript: &'a std::fs::File,
    line: &'a mut dyn FnMut(String) -> bool,
    /// The reader of the lines went away.
    stopped: bool,
}

impl Events<'_> {
    /// Output events for the transcript up to `offset`, at `at_us`.
    fn output_to(&mut self, offset: u64, at_us: i64) -> std::io::Result<()> {
        while self.written < offset && !self.stopped {
            let len = (offset - self.written).min(MAX_EVENT_BYTES) as usize;
            let mut bytes = vec![0u8; len];
            self.transcript.read_exact_at(&mut bytes, self.written)?;
            self.written += len as u64;
            let joined = after_held(&mut self.held, &bytes).into_owned();
            let whole = joined.len() - incomplete_char_len(&joined);
            self.held = joined[whole..].to_vec();
            if whole > 0 {
                let text = String::from_utf8_lossy(&joined[..whole]).into_owned();
                self.event(at_us, "o", Value::String(text));
            }
        }
        Ok(())
    }

    fn event(&mut self, at_us: i64, code: &str, data: Value) {
        let at_us = at_us.max(self.last_us);
        let seconds = match self.version {
            CastVersion::V3 => at_us - self.last_us,
            CastVersion::V2 => at_us - self.start_us,
        } as f64
            / 1e6;
        self.last_us = at_us;
        if !self.stopped && !(self.line)(json!([seconds, code, data]).to_string()) {
            self.stopped = true;
        }
    }
}

/// A terminal size as resize marks and `r` events write it: `COLSxROWS`.
pub(crate) fn size_text(size: TermSize) -> String {
    format!("{}x{}", size.cols, size.rows)
}

/// The size `size_text` wrote.
pub(crate) fn parse_size(text: &str) -> Option<TermSize> {
    let (cols, rows) = text.split_once('x')?;
    TermSize::new(cols.parse().ok()?, rows.parse().ok()?)
}

fn signal_number(name: &str) -> Option<i32> {
    name.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|s| s as i32)
}

/// Microseconds since the Unix epoch.
pub fn micros(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}
