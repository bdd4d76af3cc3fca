//! Output the screen model has not drawn yet, and the part of it that never needs drawing.
//!
//! vt100 draws ~35 MB/s on this kind of machine, about half of what a PTY delivers, so drawing
//! every byte as it is read would halve output speed. Yet most of a flood scrolls away before
//! anyone looks. So output that only prints — text, CR, LF, TAB, BS and the CSI sequences
//! `m` (colours), `K` (erase in line), `G`, `C`, `D` (column moves) — waits here ("plain"
//! output), and is drawn when the screen is read, when other output arrives, when the screen is
//! resized, or when output pauses (the reader does it). Whatever else arrives is drawn at once,
//! in order, after the backlog.
//!
//! Once the backlog holds `lines_to_skip(rows)` line feeds after a line start, everything before
//! that line start is dropped undrawn and only its colour changes are replayed. Why that is exact:
//! plain output touches nothing but the cells of the screen (and scrollback), the cursor and the
//! colours. After a line start ("\r\n") the cursor is in column 0 whatever came before. With no
//! scroll region on the main screen, `rows - 1` line feeds put the cursor on the bottom row from
//! any row, and each further one scrolls the whole screen, so after `rows + scrollback` more,
//! every visible and scrollback row was made by the output drawn after the cut. What the dropped
//! part printed is gone from the screen either way.
//!
//! The one thing not kept exactly is vt100's count of rows ever scrolled off, which decides how
//! many blank rows a resize that grows the screen adds above the scrollback. At least
//! `MAX_DIMENSION` scrolled rows are always drawn after a cut, so any single resize is exact;
//! only a long run of grow/shrink cycles with the cursor near the top could differ.

use std::collections::VecDeque;

use super::screen::{MAX_DIMENSION, SCREEN_SCROLLBACK_ROWS, after_held};

/// The most bytes kept undrawn; beyond it (lines that never end) the backlog is drawn.
pub const MAX_BACKLOG_BYTES: usize = 512 * 1024;
/// Longest escape sequence recognised as plain; a longer one is drawn at once.
const MAX_PLAIN_SEQUENCE: usize = 64;
/// Capacity kept after the backlog is drawn; more is given back, so idle sessions stay small.
const KEPT_CAPACITY: usize = 16 * 1024;

/// Line feeds that must follow a line start before the output ahead of it may go undrawn.
pub fn lines_to_skip(rows: u16) -> u64 {
    let rows = u64::from(rows);
    let scrolls = (rows + SCREEN_SCROLLBACK_ROWS as u64).max(u64::from(MAX_DIMENSION));
    rows + scrolls
}

/// Where vte's parser is, as far as this module needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ParseState {
    #[default]
    Ground,
    Escape,
    EscapeIntermediate,
    Csi,
    Osc,
    /// DCS, SOS, PM or APC: ends only with ESC, CAN or SUB.
    OtherString,
}

/// Follows vte's state machine over the output drawn at once, to know when the parser is back
/// in its ground state (so deferring may resume), and tracks the two facts deferring depends on:
/// which screen is active and whether the main screen has a scroll region. Where it cannot be
/// sure, it errs towards drawing everything.
#[derive(Debug, Default)]
struct Mirror {
    state: ParseState,
    /// The parameter and intermediate bytes of the CSI sequence being read.
    csi: Vec<u8>,
    csi_overflow: bool,
    /// `Some(true)` on the alternate screen; `None` when a mode change could not be read.
    alternate: Option<bool>,
    /// The main screen may have a scroll region smaller than the screen.
    main_region: bool,
}

impl Mirror {
    /// Follows one byte; `rows` is the screen height, for reading scroll regions.
    fn step(&mut self, b: u8, rows: u16) {
        use ParseState::*;
        self.state = match (self.state, b) {
            (Ground, 0x1b) => Escape,
            (Ground, _) => Ground,
            // vte's "anywhere" transitions.
            (_, 0x18 | 0x1a) => Ground,
            (_, 0x1b) => Escape,
            (Escape, 0x20..=0x2f) => EscapeIntermediate,
            (Escape, b'[') => {
                self.csi.clear();
                self.csi_overflow = false;
                Csi
            }
            (Escape, b']') => Osc,
            (Escape, b'P' | b'X' | b'^' | b'_') => OtherString,
            (Escape, b'c') => {
                // RIS: everything back to its defaults.
                self.alternate = Some(false);
                self.main_region = false;
                Ground
            }
            (Escape | EscapeIntermediate, 0x30..=0x7e) => Ground,
            (Csi, 0x40..=0x7e) => {
                self.csi_dispatch(b, rows);
                Ground
            }
            (Csi, 0x20..=0x3f) => {
                if self.csi.len() < MAX_PLAIN_SEQUENCE {
                    self.csi.push(b);
                } else {
                    self.csi_overflow = true;
                }
                Csi
            }
            (Osc, 0x07) => Ground,
            (state, _) => state,
        };
    }

    fn csi_dispatch(&mut self, action: u8, rows: u16) {
        let sure_alternate = self.alternate == Some(true);
        match action {
            b'r' => {
                let full = (!self.csi_overflow)
                    .then(|| numeric_params(&self.csi))
                    .flatten()
                    .map(|p| scroll_region_is_full(&p, rows));
                match full {
                    Some(true) if self.alternate == Some(false) => self.main_region = false,
                    Some(true) => {}
                    _ if sure_alternate => {}
                    _ => self.main_region = true,
                }
            }
            b'h' | b'l' if self.csi.first() == Some(&b'?') => {
                let modes = (!self.csi_overflow)
                    .then(|| numeric_params(&self.csi[1..]))
                    .flatten();
                match modes {
                    Some(modes) if modes.iter().any(|m| matches!(m, 47 | 1049)) => {
                        self.alternate = Some(action == b'h');
                    }
                    Some(_) => {}
                    None => self.alternate = None,
                }
            }
            _ => {}
        }
    }
}

/// `;`-separated decimal parameters (empty ones as 0), or `None` for anything else.
fn numeric_params(bytes: &[u8]) -> Option<Vec<u32>> {
    bytes
        .split(|&b| b == b';')
        .map(|p| {
            if p.iter().all(u8::is_ascii_digit) {
                Some(p.iter().fold(0u32, |n, d| {
                    n.saturating_mul(10).saturating_add(u32::from(d - b'0'))
                }))
            } else {
                None
            }
        })
        .collect()
}

/// Whether DECSTBM with `params` leaves the whole screen scrolling (as vt100 reads them).
fn scroll_region_is_full(params: &[u32], rows: u16) -> bool {
    let rows = u32::from(rows);
    let top = params.first().copied().filter(|&t| t != 0).unwrap_or(1);
    let bottom = params.get(1).copied().filter(|&b| b != 0).unwrap_or(rows);
    let (top, bottom) = (top - 1, (bottom.max(1) - 1).min(rows - 1));
    top >= bottom || (top == 0 && bottom == rows - 1)
}

/// How a scan of plain output ended.
enum PlainEnd {
    /// The input ended.
    End,
    /// The input ended inside an escape sequence that may yet turn out plain.
    Incomplete,
    /// A byte or sequence that is not plain.
    NotPlain,
}

/// The length of the plain output at the start of `input`, and why it ends there.
fn scan_plain(input: &[u8]) -> (usize, PlainEnd) {
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            0x20..=0x7e | 0x80..=0xff | b'\r' | b'\n' | b'\t' | 0x08 => i += 1,
            0x1b => match plain_sequence_len(&input[i..]) {
                Some(Some(n)) => i += n,
                Some(None) => return (i, PlainEnd::Incomplete),
                None => return (i, PlainEnd::NotPlain),
            },
            _ => return (i, PlainEnd::NotPlain),
        }
    }
    (i, PlainEnd::End)
}

/// For `bytes` starting with ESC: `Some(Some(len))` for a whole plain CSI sequence,
/// `Some(None)` when `bytes` ends before it could tell, `None` when it is not plain.
fn plain_sequence_len(bytes: &[u8]) -> Option<Option<usize>> {
    match bytes.get(1) {
        None => return Some(None),
        Some(b'[') => {}
        Some(_) => return None,
    }
    for (i, &b) in bytes.iter().enumerate().skip(2) {
        match b {
            b'0'..=b'9' | b';' | b':' if i < MAX_PLAIN_SEQUENCE => {}
            b'm' | b'K' | b'G' | b'C' | b'D' => return Some(Some(i + 1)),
            _ => return None,
        }
    }
    (bytes.len() < MAX_PLAIN_SEQUENCE).then_some(None)
}

/// Whether the SGR parameters `params` start by resetting every attribute.
fn sgr_resets(params: &[u8]) -> bool {
    let first = params.split(|&b| b == b';').next().unwrap_or_default();
    first.iter().all(|&b| b == b'0')
}

/// Output waiting to be drawn; see the module documentation.
#[derive(Debug)]
pub struct Backlog {
    /// Plain output not yet drawn is `bytes[head..]`; it starts where the parser is in its
    /// ground state. What is before `head` was dropped and is reclaimed now and then.
    bytes: Vec<u8>,
    head: usize,
    /// How many bytes were ever deferred before `bytes[0]`.
    start: u64,
    /// Line feeds ever deferred.
    line_feeds: u64,
    /// Line starts ("\r\n") in the backlog: (bytes ever deferred up to it, line feeds up to it).
    line_starts: VecDeque<(u64, u64)>,
    last_was_cr: bool,
    /// An escape sequence cut off at the end of the last output, which may turn out plain.
    carry: Vec<u8>,
    /// Output is being drawn at once, until the next line feed in the ground state.
    drawing: bool,
    mirror: Mirror,
    rows: u16,
    /// Bytes dropped undrawn so far (tests and benchmarks look at it).
    skipped: u64,
}

impl Backlog {
    /// An empty backlog for a screen of `rows`.
    pub fn new(rows: u16) -> Self {
        Self {
            bytes: Vec::new(),
            head: 0,
            start: 0,
            line_feeds: 0,
            line_starts: VecDeque::new(),
            last_was_cr: false,
            carry: Vec::new(),
            drawing: false,
            mirror: Mirror {
                alternate: Some(false),
                ..Mirror::default()
            },
            rows,
            skipped: 0,
        }
    }

    /// Takes program output: plain output is deferred, the rest handed to `draw` in order
    /// (after the backlog).
    pub fn push(&mut self, input: &[u8], draw: &mut impl FnMut(&[u8])) {
        let input = after_held(&mut self.carry, input);
        let mut rest = &input[..];
        while !rest.is_empty() {
            if self.drawing {
                self.flush(draw);
                let n = self.drawn_len(rest);
                draw(&rest[..n]);
                rest = &rest[n..];
                continue;
            }
            let (n, end) = scan_plain(rest);
            self.defer(&rest[..n]);
            rest = &rest[n..];
            match end {
                PlainEnd::End => {}
                PlainEnd::Incomplete => {
                    self.carry = rest.to_vec();
                    break;
                }
                PlainEnd::NotPlain => self.drawing = true,
            }
        }
        self.skip_what_scrolls_away(draw);
        if self.pending_len() > MAX_BACKLOG_BYTES {
            self.flush(draw);
        }
    }

    /// How much of `input` is drawn at once: up to and including the first line feed the
    /// parser reads in its ground state (deferring resumes after it), else all of it.
    fn drawn_len(&mut self, input: &[u8]) -> usize {
        for (i, &b) in input.iter().enumerate() {
            self.mirror.step(b, self.rows);
            if b == b'\n' && self.mirror.state == ParseState::Ground {
                self.drawing = false;
                self.last_was_cr = false;
                return i + 1;
            }
        }
        input.len()
    }

    /// Appends plain output, noting its line feeds and line starts.
    fn defer(&mut self, plain: &[u8]) {
        let Some(&last) = plain.last() else {
            return;
        };
        let at = self.start + self.bytes.len() as u64;
        for i in memchr::memchr_iter(b'\n', plain) {
            self.line_feeds += 1;
            let after_cr = if i == 0 {
                self.last_was_cr
            } else {
                plain[i - 1] == b'\r'
            };
            if after_cr {
                self.line_starts
                    .push_back((at + i as u64 + 1, self.line_feeds));
            }
        }
        self.last_was_cr = last == b'\r';
        self.bytes.extend_from_slice(plain);
    }

    /// Drops, undrawn, the output before the last line start that has enough line feeds after
    /// it, replaying only its colour changes.
    fn skip_what_scrolls_away(&mut self, draw: &mut impl FnMut(&[u8])) {
        if self.mirror.alternate != Some(false) || self.mirror.main_region {
            return;
        }
        let needed = lines_to_skip(self.rows);
        let mut cut = None;
        while let Some(&(at, feeds)) = self.line_starts.front() {
            if self.line_feeds - feeds < needed {
                break;
            }
            cut = Some(at);
            self.line_starts.pop_front();
        }
        let Some(cut) = cut else {
            return;
        };
        let cut = (cut - self.start) as usize;
        draw(&colour_changes(&self.bytes[self.head..cut]));
        self.skipped += (cut - self.head) as u64;
        self.head = cut;
        if self.head > self.bytes.len() / 2 {
            self.bytes.drain(..self.head);
            self.start += self.head as u64;
            self.head = 0;
        }
    }

    /// Draws everything deferred.
    pub fn flush(&mut self, draw: &mut impl FnMut(&[u8])) {
        if !self.is_pending() {
            return;
        }
        draw(&self.bytes[self.head..]);
        self.start += self.bytes.len() as u64;
        self.bytes.clear();
        self.head = 0;
        self.line_starts.clear();
        if self.bytes.capacity() > KEPT_CAPACITY {
            self.bytes.shrink_to(KEPT_CAPACITY);
            self.line_starts.shrink_to(KEPT_CAPACITY / 64);
        }
    }

    fn pending_len(&self) -> usize {
        self.bytes.len() - self.head
    }

    /// Whether output is waiting to be drawn.
    pub fn is_pending(&self) -> bool {
        self.pending_len() > 0
    }

    /// The screen is now `rows` high (the caller drew the backlog first). A resize resets scroll
    /// regions.
    pub fn resized(&mut self, rows: u16) {
        debug_assert!(!self.is_pending());
        self.rows = rows;
        self.mirror.main_region = false;
    }

    /// What the parser says after drawing: which screen is active. Deferred output never
    /// switches screens, so the parser knows even with a backlog.
    pub fn confirm_alternate(&mut self, alternate: bool) {
        self.mirror.alternate = Some(alternate);
    }

    /// Bytes dropped undrawn so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

/// The SGR sequences in plain output `bytes` that still count at its end: those from the last
/// one that resets every attribute.
fn colour_changes(bytes: &[u8]) -> Vec<u8> {
    let mut sgrs: Vec<&[u8]> = Vec::new();
    let mut from = 0;
    while let Some(esc) = memchr::memchr(0x1b, &bytes[from..]) {
        let seq = &bytes[from + esc..];
        // Deferred output holds only whole plain sequences: ESC [ params final.
        let len = seq[2..]
            .iter()
            .position(|b| b.is_ascii_alphabetic())
            .map_or(seq.len(), |p| p + 3);
        if seq[len - 1] == b'm' {
            if sgr_resets(&seq[2..len - 1]) {
                sgrs.clear();
            }
            sgrs.push(&seq[..len]);
        }
        from += esc + len;
    }
    sgrs.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_output_is_recognised() {
        assert!(matches!(
            scan_plain(b"ab\x1b[1;31mc\x1b[K\r\n\x1b[2G\t\x08"),
            (21, PlainEnd::End)
        ));
        assert!(matches!(
            scan_plain(b"ab\x1b[1;3"),
            (2, PlainEnd::Incomplete)
        ));
        assert!(matches!(scan_plain(b"ab\x1b"), (2, PlainEnd::Incomplete)));
        assert!(matches!(scan_plain(b"ab\x1b[2J"), (2, PlainEnd::NotPlain)));
        assert!(matches!(
            scan_plain(b"ab\x1b[?25l"),
            (2, PlainEnd::NotPlain)
        ));
        assert!(matches!(scan_plain(b"ab\x07"), (2, PlainEnd::NotPlain)));
        assert!(matches!(scan_plain(b"ab\x1b]0;t"), (2, PlainEnd::NotPlain)));
        let long = [b"\x1b[".as_slice(), &[b'1'; 100], b"m"].concat();
        assert!(matches!(scan_plain(&long), (0, PlainEnd::NotPlain)));
    }

    #[test]
    fn the_backlog_stays_bounded() {
        let mut backlog = Backlog::new(24);
        let drawn = std::cell::Cell::new(0usize);
        let mut draw = |bytes: &[u8]| drawn.set(drawn.get() + bytes.len());
        // Lines that never end (no "\r\n" to cut at): drawn once the bound is passed.
        let endless = vec![b'x'; 64 * 1024];
        for _ in 0..20 {
            backlog.push(&endless, &mut draw);
            assert!(backlog.pending_len() <= MAX_BACKLOG_BYTES);
        }
        backlog.flush(&mut draw);
        assert_eq!(
            drawn.get(),
            20 * endless.len(),
            "every byte drawn, none skipped"
        );
        // A flood of ordinary lines: what scrolls away is dropped, so the backlog holds about
        // `lines_to_skip` lines whatever the flood's size.
        let lines: Vec<u8> = (0..100_000)
            .flat_map(|i| format!("line {i}\r\n").into_bytes())
            .collect();
        for chunk in lines.chunks(4096) {
            backlog.push(chunk, &mut draw);
        }
        let most = (lines_to_skip(24) as usize + 4096) * "line 99999\r\n".len();
        assert!(backlog.pending_len() <= most, "{}", backlog.pending_len());
        assert!(backlog.skipped() > lines.len() as u64 / 2);
    }

    #[test]
    fn colour_changes_keep_what_follows_the_last_reset() {
        assert_eq!(
            colour_changes(b"a\x1b[31mb\x1b[Kc\x1b[0md\x1b[1m\x1b[2Ge\x1b[;4mf\x1b[7m"),
            b"\x1b[;4m\x1b[7m"
        );
        assert_eq!(colour_changes(b"\x1b[31mx\x1b[1m"), b"\x1b[31m\x1b[1m");
        assert_eq!(colour_changes(b"plain"), b"");
    }

    #[test]
    fn scroll_regions_are_read_as_vt100_reads_them() {
        assert!(scroll_region_is_full(&[], 24));
        assert!(scroll_region_is_full(&[0, 0], 24));
        assert!(scroll_region_is_full(&[1, 24], 24));
        assert!(scroll_region_is_full(&[1, 99], 24));
        assert!(scroll_region_is_full(&[5, 5], 24));
        assert!(!scroll_region_is_full(&[2, 24], 24));
        assert!(!scroll_region_is_full(&[1, 23], 24));
    }

    #[test]
    fn the_mirror_follows_regions_and_screens() {
        let mut m = Mirror {
            alternate: Some(false),
            ..Mirror::default()
        };
        let feed = |m: &mut Mirror, bytes: &[u8]| bytes.iter().for_each(|&b| m.step(b, 24));
        feed(&mut m, b"\x1b[2;20r");
        assert!(m.main_region);
        feed(&mut m, b"\x1b[?1049h\x1b[r");
        assert!(
            m.main_region,
            "a reset on the alternate screen leaves the main one"
        );
        feed(&mut m, b"\x1b[?1049l\x1b[1;24r");
        assert!(!m.main_region);
        feed(&mut m, b"\x1b]0;title\x1b[r still in no sequence");
        assert_eq!(m.state, ParseState::Ground);
        feed(&mut m, b"\x1bP1$r\x07");
        assert_eq!(m.state, ParseState::OtherString, "BEL does not end a DCS");
        feed(&mut m, b"\x1b\\");
        assert_eq!(m.state, ParseState::Ground);
        feed(&mut m, b"\x1b[5;6r");
        assert!(m.main_region);
        feed(&mut m, b"\x1bc");
        assert!(!m.main_region);
    }
}
