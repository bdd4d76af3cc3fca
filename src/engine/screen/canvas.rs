//! The live drawing machinery behind `Screen`: the vt100 parser, the limiter that keeps escape
//! strings bounded, the callbacks that collect what the grid does not keep (title changes, bells,
//! answers owed), and the hold-back of a UTF-8 character split across reads.

use std::borrow::Cow;

use super::super::answers::{self, QueryKind};
use super::{SCREEN_SCROLLBACK_ROWS, TermSize, nonzero};

/// The longest OSC, DCS, APC or PM string passed to the parser; the rest of a longer one is
/// dropped (the output log keeps it). vt100's parser buffers such strings without a bound, so a
/// program printing an endless OSC would otherwise grow the server's memory without limit.
pub const MAX_ESCAPE_STRING: usize = 4096;

/// Where the byte stream is with respect to escape strings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum StringState {
    #[default]
    Ground,
    /// After ESC.
    Escape,
    /// Inside a string; `len` bytes of it so far.
    InString { len: usize },
    /// ESC inside a string: `\` ends it (ST), anything else ends it and starts a new escape.
    StringEscape,
}

/// Cuts escape strings to `MAX_ESCAPE_STRING` bytes on their way to the parser.
#[derive(Debug, Default)]
struct StringLimiter {
    state: StringState,
}

impl StringLimiter {
    /// The bytes of `input` the parser may see, appended to `out`.
    fn filter(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while let Some((&b, rest)) = input.split_first() {
            if self.state == StringState::Ground && b != 0x1b {
                // Plain text up to the next ESC passes in one copy.
                let plain = input.iter().position(|&c| c == 0x1b).unwrap_or(input.len());
                out.extend_from_slice(&input[..plain]);
                input = &input[plain..];
                continue;
            }
            let (next, keep) = self.step(b);
            self.state = next;
            if keep {
                out.push(b);
            }
            input = rest;
        }
    }

    fn step(&self, b: u8) -> (StringState, bool) {
        use StringState::*;
        match (self.state, b) {
            (Ground, 0x1b) => (Escape, true),
            (Ground, _) => (Ground, true),
            (Escape, b']' | b'P' | b'_' | b'^' | b'X') => (InString { len: 0 }, true),
            (Escape, 0x1b) => (Escape, true),
            (Escape, _) => (Ground, true),
            (InString { .. }, 0x07 | 0x18 | 0x1a) => (Ground, true),
            (InString { .. }, 0x1b) => (StringEscape, true),
            (InString { len }, _) => (InString { len: len + 1 }, len < MAX_ESCAPE_STRING),
            (StringEscape, b'\\') => (Ground, true),
            (StringEscape, _) => (StringLimiter { state: Escape }.step(b).0, true),
        }
    }
}

/// Terminal events the parser reports that the plain screen grid does not keep, and the answers
/// owed to the program for its queries (see `answers.rs`).
#[derive(Debug, Default)]
pub(super) struct ScreenEvents {
    pub(super) title: String,
    pub(super) bells: u64,
    pub(super) replies: Vec<(QueryKind, Vec<u8>)>,
    /// Titles set since they were last taken, oldest first; at most `MAX_TITLE_CHANGES`.
    pub(super) title_changes: Vec<String>,
}

/// Title changes kept between two takes: a program that sets its title in a loop must not flood
/// whoever reports them. The newest change (the title in force) is always kept.
pub const MAX_TITLE_CHANGES: usize = 16;

impl vt100::Callbacks for ScreenEvents {
    fn unhandled_csi(
        &mut self,
        screen: &mut vt100::Screen,
        i1: Option<u8>,
        i2: Option<u8>,
        params: &[&[u16]],
        c: char,
    ) {
        self.replies
            .extend(answers::answer_csi(screen, i1, i2, params, c));
    }

    fn unhandled_osc(&mut self, _: &mut vt100::Screen, params: &[&[u8]]) {
        self.replies.extend(answers::answer_osc(params));
    }

    fn audible_bell(&mut self, _: &mut vt100::Screen) {
        self.bells += 1;
    }

    fn set_window_title(&mut self, _: &mut vt100::Screen, title: &[u8]) {
        let title = String::from_utf8_lossy(title).into_owned();
        if title == self.title {
            return;
        }
        if self.title_changes.len() == MAX_TITLE_CHANGES {
            self.title_changes.remove(0);
        }
        self.title_changes.push(title.clone());
        self.title = title;
    }
}

/// The parser and what stands in front of it.
pub(super) struct Canvas {
    pub(super) parser: vt100::Parser<ScreenEvents>,
    limiter: StringLimiter,
    /// Reused buffer for the limiter's output.
    filtered: Vec<u8>,
    /// A UTF-8 character cut off at the end of the last bytes drawn, held back until it is
    /// whole: vte 0.15 drops up to two bytes after a character split across two calls
    /// (alacritty/vte#159), which would make the screen depend on where PTY reads split.
    partial_char: Vec<u8>,
}

impl Canvas {
    pub(super) fn new(size: TermSize) -> Self {
        Self {
            parser: vt100::Parser::new_with_callbacks(
                nonzero(size.rows),
                nonzero(size.cols),
                SCREEN_SCROLLBACK_ROWS,
                ScreenEvents::default(),
            ),
            limiter: StringLimiter::default(),
            filtered: Vec::new(),
            partial_char: Vec::new(),
        }
    }

    /// Gives `bytes` to the parser, escape strings cut to `MAX_ESCAPE_STRING`.
    pub(super) fn draw(&mut self, bytes: &[u8]) {
        let bytes = &*after_held(&mut self.partial_char, bytes);
        let whole = bytes.len() - incomplete_char_len(bytes);
        self.partial_char.extend_from_slice(&bytes[whole..]);
        self.filtered.clear();
        self.limiter.filter(&bytes[..whole], &mut self.filtered);
        self.parser.process(&self.filtered);
    }
}

/// `input` preceded by what an earlier call held back in `held` (which is emptied): bytes kept
/// until the rest of what they start arrives.
pub(crate) fn after_held<'a>(held: &mut Vec<u8>, input: &'a [u8]) -> Cow<'a, [u8]> {
    if held.is_empty() {
        return Cow::Borrowed(input);
    }
    let mut joined = std::mem::take(held);
    joined.extend_from_slice(input);
    Cow::Owned(joined)
}

/// The length of the incomplete UTF-8 character at the end of `bytes` (0 if none).
pub(crate) fn incomplete_char_len(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let b = bytes[bytes.len() - back];
        let needed = match b {
            0x80..=0xbf => continue,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => return 0,
        };
        return if back < needed { back } else { 0 };
    }
    0
}
