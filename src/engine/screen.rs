//! The screen model: what a person looking at the terminal would see right now.
//!
//! A vt100 parser fed every output byte in order, so its state is always "the screen as of byte
//! offset N". Scrollback is kept small on purpose: history lives in the output log and the
//! transcript, and a large vt100 scrollback halves parsing speed and costs ~32 bytes a cell.

use std::num::NonZeroU16;

use super::answers::{self, QueryKind};

/// Rows of scrollback the screen model keeps above the visible screen.
pub const SCREEN_SCROLLBACK_ROWS: usize = 200;

/// The largest accepted terminal width or height, in cells.
pub const MAX_DIMENSION: u16 = 1000;

/// A terminal size in cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermSize {
    pub cols: u16,
    pub rows: u16,
}

impl TermSize {
    /// A size with both dimensions in `1..=MAX_DIMENSION`, or `None`.
    pub fn new(cols: u16, rows: u16) -> Option<Self> {
        let ok = |d: u16| (1..=MAX_DIMENSION).contains(&d);
        (ok(cols) && ok(rows)).then_some(Self { cols, rows })
    }
}

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
struct ScreenEvents {
    title: String,
    bells: u64,
    replies: Vec<(QueryKind, Vec<u8>)>,
}

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
        self.title = String::from_utf8_lossy(title).into_owned();
    }
}

/// The vt100 model of one session's terminal.
pub struct Screen {
    parser: vt100::Parser<ScreenEvents>,
    limiter: StringLimiter,
    /// Reused buffer for the limiter's output.
    filtered: Vec<u8>,
}

/// A plain-text picture of the screen, as returned to API clients.
#[derive(Debug, Clone)]
pub struct ScreenText {
    pub size: TermSize,
    /// Cursor position, zero-based.
    pub cursor_row: u16,
    pub cursor_col: u16,
    pub title: String,
    pub alternate_screen: bool,
    pub bracketed_paste: bool,
    /// One string per visible row, trailing blanks removed.
    pub lines: Vec<String>,
    pub bells: u64,
}

impl Screen {
    /// A blank screen of `size`.
    pub fn new(size: TermSize) -> Self {
        Self {
            parser: vt100::Parser::new_with_callbacks(
                nonzero(size.rows),
                nonzero(size.cols),
                SCREEN_SCROLLBACK_ROWS,
                ScreenEvents::default(),
            ),
            limiter: StringLimiter::default(),
            filtered: Vec::new(),
        }
    }

    /// Feeds program output into the model.
    pub fn process(&mut self, bytes: &[u8]) {
        self.filtered.clear();
        self.limiter.filter(bytes, &mut self.filtered);
        self.parser.process(&self.filtered);
    }

    /// Changes the model's size, as the PTY's was.
    pub fn resize(&mut self, size: TermSize) {
        self.parser.set_size(nonzero(size.rows), nonzero(size.cols));
    }

    /// Bytes that redraw this screen, modes included, on a terminal in any prior state.
    ///
    /// vt100's formatted state does not switch screens, so the switch is prepended: a viewer that
    /// attaches while vim runs must land on the alternate screen, and one resynced after vim quit
    /// must leave it.
    pub fn redraw(&self) -> Vec<u8> {
        let screen = self.parser.screen();
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(if screen.alternate_screen() {
            b"\x1b[?1049h"
        } else {
            b"\x1b[?1049l"
        });
        out.extend_from_slice(screen.state_formatted().as_bytes());
        out
    }

    /// The window title the program set (OSC 0/2), or empty.
    pub fn title(&self) -> &str {
        &self.parser.callbacks().title
    }

    /// How many times the program rang the bell.
    pub fn bells(&self) -> u64 {
        self.parser.callbacks().bells
    }

    /// The answers owed to the program for the queries in the output processed so far.
    pub fn take_replies(&mut self) -> Vec<(QueryKind, Vec<u8>)> {
        std::mem::take(&mut self.parser.callbacks_mut().replies)
    }

    /// Whether the program switched cursor keys to application mode (DECCKM).
    pub fn application_cursor(&self) -> bool {
        self.parser.screen().application_cursor()
    }

    /// Whether the program asked for bracketed paste.
    pub fn bracketed_paste(&self) -> bool {
        self.parser.screen().bracketed_paste()
    }

    /// The visible screen with its colours and attributes, as escape sequences a terminal would
    /// render (no mode changes).
    pub fn ansi(&self) -> String {
        self.parser.screen().contents_formatted()
    }

    /// Up to `n` rows of scrollback above the visible screen, oldest first, trailing blanks
    /// removed. The alternate screen has none.
    pub fn scrollback_lines(&mut self, n: usize) -> Vec<String> {
        let cols = self.parser.screen().size().1.get();
        let rows = usize::from(self.parser.screen().size().0.get());
        let mut depth = n.min(self.parser.screen().scrollback_len());
        let mut lines = Vec::with_capacity(depth);
        while depth > 0 {
            // Scrolled back by `depth`, the top row is the scrollback row `depth` rows up.
            self.parser.screen_mut().set_scrollback(depth);
            let take = depth.min(rows);
            lines.extend(
                self.parser
                    .screen()
                    .rows(0, cols)
                    .take(take)
                    .map(|line| line.trim_end().to_owned()),
            );
            depth -= take;
        }
        self.parser.screen_mut().set_scrollback(0);
        lines
    }

    /// The screen as text.
    pub fn text(&self) -> ScreenText {
        let screen = self.parser.screen();
        let (rows, cols) = screen.size();
        let (cursor_row, cursor_col) = screen.cursor_position();
        let events = self.parser.callbacks();
        ScreenText {
            size: TermSize {
                cols: cols.get(),
                rows: rows.get(),
            },
            cursor_row,
            cursor_col,
            title: events.title.clone(),
            alternate_screen: screen.alternate_screen(),
            bracketed_paste: screen.bracketed_paste(),
            lines: screen
                .rows(0, cols.get())
                .map(|line| line.trim_end().to_owned())
                .collect(),
            bells: events.bells,
        }
    }
}

fn nonzero(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_text_title_cursor_and_alternate_screen() {
        let mut screen = Screen::new(TermSize::new(20, 5).unwrap());
        screen.process(b"hello\r\n\x1b]0;my title\x07wor");
        screen.process("ld \u{e9}".as_bytes());
        let text = screen.text();
        assert_eq!(text.lines[0], "hello");
        assert_eq!(text.lines[1], "world \u{e9}");
        assert_eq!((text.cursor_row, text.cursor_col), (1, 7));
        assert_eq!(text.title, "my title");
        assert!(!text.alternate_screen);

        screen.process(b"\x1b[?1049h\x1b[Hfull");
        assert!(screen.text().alternate_screen);
        assert!(screen.redraw().starts_with(b"\x1b[?1049h"));

        // Replaying the redraw into a fresh model reproduces the screen.
        let mut copy = Screen::new(TermSize::new(20, 5).unwrap());
        copy.process(&screen.redraw());
        assert_eq!(copy.text().lines, screen.text().lines);
    }

    #[test]
    fn scrollback_lines_come_oldest_first() {
        let mut screen = Screen::new(TermSize::new(10, 3).unwrap());
        for i in 1..=10 {
            screen.process(format!("line{i}\r\n").as_bytes());
        }
        // Visible: line9, line10, and the empty cursor row; above them line1..line8.
        assert_eq!(screen.text().lines, ["line9", "line10", ""]);
        assert_eq!(screen.scrollback_lines(2), ["line7", "line8"]);
        assert_eq!(
            screen.scrollback_lines(5),
            ["line4", "line5", "line6", "line7", "line8"]
        );
        assert_eq!(screen.scrollback_lines(100).len(), 8);
        assert_eq!(screen.scrollback_lines(0), Vec::<String>::new());
        assert_eq!(
            screen.text().lines,
            ["line9", "line10", ""],
            "the view is restored"
        );
    }

    #[test]
    fn endless_escape_strings_are_cut() {
        let mut screen = Screen::new(TermSize::new(20, 3).unwrap());
        screen.process(b"\x1b]0;");
        for _ in 0..1000 {
            screen.process(&[b'a'; 10_000]);
        }
        screen.process(b"\x07after");
        assert_eq!(
            screen.title().len(),
            MAX_ESCAPE_STRING - 2,
            "\"0;\" counts too"
        );
        assert_eq!(screen.text().lines[0], "after");
        // ST and a new escape both end a string; short strings pass whole.
        screen.process(b"\x1b]2;short\x1b\\\x1b]2;x\x1b[1mB");
        assert_eq!(screen.title(), "x");
        assert_eq!(screen.text().lines[0], "afterB");
    }

    #[test]
    fn rejects_zero_and_huge_sizes() {
        assert!(TermSize::new(0, 24).is_none());
        assert!(TermSize::new(80, 0).is_none());
        assert!(TermSize::new(MAX_DIMENSION + 1, 24).is_none());
        assert!(TermSize::new(1, 1).is_some());
    }

    #[test]
    fn one_column_screen_survives_wide_characters() {
        let mut screen = Screen::new(TermSize::new(1, 3).unwrap());
        screen.process("a\u{4e2d}\u{6587}b\r\n\x1b[5@x\x1b[3P".as_bytes());
        screen.resize(TermSize::new(2, 2).unwrap());
        screen.process("\u{4e2d}".as_bytes());
        let _ = screen.text();
        let _ = screen.redraw();
    }
}
