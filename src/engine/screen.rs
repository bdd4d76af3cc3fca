//! The screen model: what a person looking at the terminal would see right now.
//!
//! A vt100 parser fed the output in order, so what it shows is always "the screen as of byte
//! offset N". Output that only prints waits in a backlog until someone looks (see `backlog.rs`):
//! every method that reads the screen draws it first. Scrollback is kept small on purpose:
//! history lives in the output log and the transcript, and a large vt100 scrollback halves
//! parsing speed and costs ~32 bytes a cell.

use std::borrow::Cow;
use std::num::NonZeroU16;

use super::answers::{self, QueryKind};
use super::backlog::Backlog;

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
    canvas: Canvas,
    /// Output not drawn yet; `None` draws everything at once.
    backlog: Option<Backlog>,
}

/// The parser and what stands in front of it.
struct Canvas {
    parser: vt100::Parser<ScreenEvents>,
    limiter: StringLimiter,
    /// Reused buffer for the limiter's output.
    filtered: Vec<u8>,
    /// A UTF-8 character cut off at the end of the last bytes drawn, held back until it is
    /// whole: vte 0.15 drops up to two bytes after a character split across two calls
    /// (alacritty/vte#159), which would make the screen depend on where PTY reads split.
    partial_char: Vec<u8>,
}

impl Canvas {
    /// Gives `bytes` to the parser, escape strings cut to `MAX_ESCAPE_STRING`.
    fn draw(&mut self, bytes: &[u8]) {
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
pub(super) fn after_held<'a>(held: &mut Vec<u8>, input: &'a [u8]) -> Cow<'a, [u8]> {
    if held.is_empty() {
        return Cow::Borrowed(input);
    }
    let mut joined = std::mem::take(held);
    joined.extend_from_slice(input);
    Cow::Owned(joined)
}

/// The length of the incomplete UTF-8 character at the end of `bytes` (0 if none).
fn incomplete_char_len(bytes: &[u8]) -> usize {
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
            backlog: Some(Backlog::new(size.rows)),
            ..Self::drawing_everything(size)
        }
    }

    /// A blank screen of `size` that draws every byte as it comes (the reference the deferred
    /// drawing is tested against).
    pub fn drawing_everything(size: TermSize) -> Self {
        Self {
            canvas: Canvas {
                parser: vt100::Parser::new_with_callbacks(
                    nonzero(size.rows),
                    nonzero(size.cols),
                    SCREEN_SCROLLBACK_ROWS,
                    ScreenEvents::default(),
                ),
                limiter: StringLimiter::default(),
                filtered: Vec::new(),
                partial_char: Vec::new(),
            },
            backlog: None,
        }
    }

    /// Feeds program output into the model.
    pub fn process(&mut self, bytes: &[u8]) {
        let Self { canvas, backlog } = self;
        match backlog {
            Some(backlog) => {
                backlog.push(bytes, &mut |bytes| canvas.draw(bytes));
                backlog.confirm_alternate(canvas.parser.screen().alternate_screen());
            }
            None => canvas.draw(bytes),
        }
    }

    /// Draws the output still waiting in the backlog.
    pub fn catch_up(&mut self) {
        let Self { canvas, backlog } = self;
        if let Some(backlog) = backlog {
            backlog.flush(&mut |bytes| canvas.draw(bytes));
        }
    }

    /// Whether output is waiting to be drawn.
    pub fn has_backlog(&self) -> bool {
        self.backlog.as_ref().is_some_and(Backlog::is_pending)
    }

    /// Output bytes that scrolled away before anyone looked, and so were never drawn.
    pub fn skipped_bytes(&self) -> u64 {
        self.backlog.as_ref().map_or(0, Backlog::skipped)
    }

    /// Changes the model's size, as the PTY's was.
    pub fn resize(&mut self, size: TermSize) {
        self.catch_up();
        self.canvas
            .parser
            .set_size(nonzero(size.rows), nonzero(size.cols));
        if let Some(backlog) = &mut self.backlog {
            backlog.resized(size.rows);
        }
    }

    /// Bytes that redraw this screen, modes included, on a terminal in any prior state.
    ///
    /// vt100's formatted state does not switch screens, so the switch is prepended: a viewer that
    /// attaches while vim runs must land on the alternate screen, and one resynced after vim quit
    /// must leave it.
    pub fn redraw(&mut self) -> Vec<u8> {
        self.catch_up();
        let screen = self.canvas.parser.screen();
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(if screen.alternate_screen() {
            b"\x1b[?1049h"
        } else {
            b"\x1b[?1049l"
        });
        out.extend_from_slice(screen.state_formatted().as_bytes());
        out
    }

    // Title, bells and input modes change only with output that is drawn at once, so reading
    // them needs no catching up.

    /// The window title the program set (OSC 0/2), or empty.
    pub fn title(&self) -> &str {
        &self.canvas.parser.callbacks().title
    }

    /// How many times the program rang the bell.
    pub fn bells(&self) -> u64 {
        self.canvas.parser.callbacks().bells
    }

    /// The answers owed to the program for the queries in the output processed so far.
    pub fn take_replies(&mut self) -> Vec<(QueryKind, Vec<u8>)> {
        std::mem::take(&mut self.canvas.parser.callbacks_mut().replies)
    }

    /// Whether the program switched cursor keys to application mode (DECCKM).
    pub fn application_cursor(&self) -> bool {
        self.canvas.parser.screen().application_cursor()
    }

    /// Whether the program asked for bracketed paste.
    pub fn bracketed_paste(&self) -> bool {
        self.canvas.parser.screen().bracketed_paste()
    }

    /// The visible screen with its colours and attributes, as escape sequences a terminal would
    /// render (no mode changes).
    pub fn ansi(&mut self) -> String {
        self.catch_up();
        self.canvas.parser.screen().contents_formatted()
    }

    /// Up to `n` rows of scrollback above the visible screen, oldest first, trailing blanks
    /// removed. The alternate screen has none.
    pub fn scrollback_lines(&mut self, n: usize) -> Vec<String> {
        self.catch_up();
        let cols = self.canvas.parser.screen().size().1.get();
        let rows = usize::from(self.canvas.parser.screen().size().0.get());
        let mut depth = n.min(self.canvas.parser.screen().scrollback_len());
        let mut lines = Vec::with_capacity(depth);
        while depth > 0 {
            // Scrolled back by `depth`, the top row is the scrollback row `depth` rows up.
            self.canvas.parser.screen_mut().set_scrollback(depth);
            let take = depth.min(rows);
            lines.extend(
                self.canvas
                    .parser
                    .screen()
                    .rows(0, cols)
                    .take(take)
                    .map(|line| line.trim_end().to_owned()),
            );
            depth -= take;
        }
        self.canvas.parser.screen_mut().set_scrollback(0);
        lines
    }

    /// The screen as text.
    pub fn text(&mut self) -> ScreenText {
        self.catch_up();
        let screen = self.canvas.parser.screen();
        let (rows, cols) = screen.size();
        let (cursor_row, cursor_col) = screen.cursor_position();
        let events = self.canvas.parser.callbacks();
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
    use crate::fuzzing::{assert_same_screen, assert_same_state};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Output like programs write: mostly plain lines (colours, wide characters, wrapping,
    /// progress rewrites, erased lines, invalid UTF-8), now and then something else.
    fn generated_output(rng: &mut StdRng, events: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..events {
            // Some stretches set a colour and then print no colour change at all, so a colour
            // set long before must survive what is skipped.
            let colourless = rng.random_bool(0.3);
            for i in 0..rng.random_range(0..4000u32) {
                if colourless && i == 5 {
                    out.extend_from_slice(b"\x1b[1;35;44m");
                }
                let kind = match rng.random_range(0..12) {
                    1 | 2 | 8 if colourless => 0,
                    kind => kind,
                };
                let line: Vec<u8> = match kind {
                    0 => format!("plain {i} the quick brown fox\r\n").into(),
                    1 => format!("\x1b[1;3{}mok\x1b[0m {i} \x1b[33mwarn\r\n", i % 8).into(),
                    2 => format!("\x1b[38;5;{}mcol \x1b[38;2;1;2;3mtrue\r\n", i % 256).into(),
                    3 => {
                        format!("\u{250c}\u{2500} \u{4e2d}\u{6587}{i} \u{65e5}\u{672c}\r\n").into()
                    }
                    4 => format!("\rprogress {i}%\x1b[K\r\x1b[2Gdone\x1b[3C!\x1b[2D?\r\n").into(),
                    5 => format!("{}\r\n", "wrap".repeat(rng.random_range(10..80))).into(),
                    6 => format!("tab\there\x08\x08X{i}\n").into(),
                    7 => b"bad \xff\xc3 utf8 \xe4\xb8\r\n".to_vec(),
                    8 => format!("\x1b[;4munder\x1b[m \x1b[7m{i}\r\n").into(),
                    9 => b"\x1b[2Kerased\x1b[1K\x1b[0K\r\n".to_vec(),
                    10 => format!("no newline {i} ").into(),
                    _ => b"\r\n".to_vec(),
                };
                out.extend_from_slice(&line);
            }
            let event: &[u8] = match rng.random_range(0..21) {
                0 => b"\x07",
                1 => b"\x1b]0;a title\x07",
                2 => b"\x1b[5;3H",
                3 => b"\x1b[2J\x1b[H",
                4 => b"\x1b[3;10r",
                5 => b"\x1b[r",
                6 => b"\x1b[?1049h\x1b[2;8r\x1b[Hin vim\r\n\x1b[6n",
                7 => b"\x1b[?1049l",
                8 => b"\x1b7\x1b[10;1Hsaved\x1b8",
                9 => b"\x1bM\x1bM\x1b[3A",
                10 => b"\x1b[2L\x1b[1M",
                11 => b"\x1b[?2004h\x1b[?1h",
                12 => b"\x1bP1$r\x07still dcs\x1b\\",
                13 => b"\x1b[?25l\x1b[>4;1m",
                14 => b"\x1bc",
                15 => b"\x1b[1;999r\x1b[6n",
                16 => b"\x1b[4h insert \x1b[4l",
                17 => b"\x1b[?7l nowrap \x1b[?7h",
                // A region with the cursor below it: line feeds overwrite the bottom row.
                18 => b"\x1b[2;6r\x1b[999;1H",
                _ => b"",
            };
            out.extend_from_slice(event);
        }
        out
    }

    #[test]
    fn a_character_split_across_reads_does_not_eat_what_follows() {
        // vte 0.15 alone drops the line feed here (alacritty/vte#159).
        let mut screen = Screen::drawing_everything(TermSize::new(20, 5).unwrap());
        screen.process(b"ab\xc3");
        screen.process(b"\xa6\n\x92");
        let text = screen.text();
        assert_eq!(text.lines[0], "ab\u{e6}");
        assert_eq!((text.cursor_row, text.cursor_col), (1, 3));
        assert_eq!(incomplete_char_len(b"a\xe4\xb8"), 2);
        assert_eq!(incomplete_char_len(b"a\xe4\xb8\xad"), 0);
        assert_eq!(incomplete_char_len(b"\xf0\x9f\x98"), 3);
        assert_eq!(incomplete_char_len(b"\x98\x98\x98"), 0);
        assert_eq!(incomplete_char_len(b""), 0);
    }

    #[test]
    fn colours_set_before_skipped_output_survive_it() {
        let size = TermSize::new(80, 24).unwrap();
        let mut deferred = Screen::new(size);
        let mut reference = Screen::drawing_everything(size);
        let mut output = b"\x1b[1;35;44m".to_vec();
        for i in 0..3000 {
            output.extend_from_slice(format!("line {i}\r\n").as_bytes());
        }
        deferred.process(&output);
        reference.process(&output);
        assert!(deferred.skipped_bytes() > 0);
        assert_same_screen(&mut deferred, &mut reference, output.len());
    }

    #[test]
    fn output_below_a_scroll_region_is_never_skipped() {
        // Line feeds below the region do not scroll: every line overwrites the bottom row, and
        // the long first line's tail stays visible after thousands of short ones.
        let size = TermSize::new(80, 24).unwrap();
        let mut deferred = Screen::new(size);
        let mut reference = Screen::drawing_everything(size);
        let region = b"\x1b[2;6r\x1b[24;1Hdrawn at once\r\n";
        let mut output = region.to_vec();
        output.extend_from_slice(format!("{}\r\n", "long".repeat(15)).as_bytes());
        for i in 0..3000 {
            output.extend_from_slice(format!("{i}\r\n").as_bytes());
        }
        deferred.process(&output);
        reference.process(&output);
        assert_same_screen(&mut deferred, &mut reference, output.len());
        assert_eq!(deferred.skipped_bytes(), 0);
        // Once the region is gone, skipping resumes.
        deferred.process(b"\x1b[r\r\n");
        reference.process(b"\x1b[r\r\n");
        deferred.process(&output[region.len()..]);
        reference.process(&output[region.len()..]);
        assert_same_screen(&mut deferred, &mut reference, output.len());
        assert!(deferred.skipped_bytes() > 0);
    }

    #[test]
    fn deferred_drawing_matches_drawing_everything() {
        for seed in 0..6u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let output = generated_output(&mut rng, 40);
            let size = TermSize::new(rng.random_range(20..140), rng.random_range(5..60)).unwrap();
            let mut deferred = Screen::new(size);
            let mut reference = Screen::drawing_everything(size);
            let mut at = 0;
            while at < output.len() {
                let end = (at + rng.random_range(1..20_000)).min(output.len());
                deferred.process(&output[at..end]);
                reference.process(&output[at..end]);
                at = end;
                assert_same_state(&mut deferred, &mut reference, at);
                match rng.random_range(0..40) {
                    0 | 1 => assert_same_screen(&mut deferred, &mut reference, at),
                    2 => {
                        let size = TermSize::new(
                            rng.random_range(1..300),
                            rng.random_range(1..MAX_DIMENSION),
                        )
                        .unwrap();
                        deferred.resize(size);
                        reference.resize(size);
                        assert_same_screen(&mut deferred, &mut reference, at);
                    }
                    _ => {}
                }
            }
            assert_same_screen(&mut deferred, &mut reference, at);
            assert!(
                deferred.skipped_bytes() > output.len() as u64 / 20,
                "seed {seed}: only {} of {} bytes skipped",
                deferred.skipped_bytes(),
                output.len()
            );
        }
    }

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
