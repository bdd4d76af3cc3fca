//! The screen model: what a person looking at the terminal would see right now.
//!
//! A vt100 parser fed the output in order, so what it shows is always "the screen as of byte
//! offset N". Output that only prints waits in a backlog until someone looks (see `backlog.rs`):
//! every method that reads the screen draws it first. Scrollback is kept small on purpose:
//! history lives in the output log and the transcript, and a large vt100 scrollback halves
//! parsing speed and costs ~32 bytes a cell.
//!
//! Once a session has ended for good, `finish` trades the parser (which costs ~32 bytes a cell of
//! screen and scrollback) for what can still be asked of it, drawn once (`finished.rs`). A quiet
//! screen with a short history may `doze`: it keeps only that history until asked (`dormant.rs`).

mod canvas;
mod dormant;
mod finished;

use std::num::NonZeroU16;

use super::answers::QueryKind;
use super::backlog::Backlog;
use canvas::Canvas;
pub use canvas::{MAX_ESCAPE_STRING, MAX_TITLE_CHANGES};
pub(crate) use canvas::{after_held, incomplete_char_len};
use dormant::{Dormant, Replay};
use finished::Finished;

/// Rows of scrollback the screen model keeps above the visible screen.
pub const SCREEN_SCROLLBACK_ROWS: usize = 200;

/// The largest accepted terminal width or height, in cells.
pub const MAX_DIMENSION: u16 = 1000;

/// A terminal size in cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// A plain-text picture of the screen, as returned to API clients.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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

/// The vt100 model of one session's terminal.
pub struct Screen {
    model: Model,
    /// Everything it was told, while that is short enough to keep (see `dormant.rs`); while it
    /// sleeps, in `Model::Dormant`.
    replay: Option<Replay>,
}

enum Model {
    Live(Box<Live>),
    /// Asleep, with what wakes it.
    Dormant(Box<Dormant>),
    /// The final picture of a session whose output has ended.
    Finished(Box<Finished>),
}

struct Live {
    canvas: Canvas,
    /// Output not drawn yet; `None` draws everything at once.
    backlog: Option<Backlog>,
}

impl Live {
    fn catch_up(&mut self) {
        let Self { canvas, backlog } = self;
        if let Some(backlog) = backlog {
            backlog.flush(&mut |bytes| canvas.draw(bytes));
        }
    }

    fn screen(&self) -> &vt100::Screen {
        self.canvas.parser.screen()
    }

    fn redraw(&mut self) -> Vec<u8> {
        self.catch_up();
        let screen = self.screen();
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(if screen.alternate_screen() {
            b"\x1b[?1049h"
        } else {
            b"\x1b[?1049l"
        });
        out.extend_from_slice(screen.state_formatted().as_bytes());
        out
    }

    fn scrollback_lines(&mut self, n: usize) -> Vec<String> {
        self.catch_up();
        let cols = self.screen().size().1.get();
        let rows = usize::from(self.screen().size().0.get());
        let mut depth = n.min(self.screen().scrollback_len());
        let mut lines = Vec::with_capacity(depth);
        while depth > 0 {
            // Scrolled back by `depth`, the top row is the scrollback row `depth` rows up.
            self.canvas.parser.screen_mut().set_scrollback(depth);
            let take = depth.min(rows);
            lines.extend(
                self.screen()
                    .rows(0, cols)
                    .take(take)
                    .map(|line| line.trim_end().to_owned()),
            );
            depth -= take;
        }
        self.canvas.parser.screen_mut().set_scrollback(0);
        lines
    }

    fn finished(&mut self) -> Finished {
        Finished {
            skipped: self.backlog.as_ref().map_or(0, Backlog::skipped),
            scrollback: self.scrollback_lines(SCREEN_SCROLLBACK_ROWS),
            redraw: self.redraw(),
            ansi: self.screen().contents_formatted(),
            application_cursor: self.screen().application_cursor(),
            text: self.text(),
        }
    }

    fn text(&mut self) -> ScreenText {
        self.catch_up();
        let screen = self.screen();
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

impl Screen {
    /// A blank screen of `size`.
    pub fn new(size: TermSize) -> Self {
        Self {
            replay: Some(Replay::new(size)),
            ..Self::untracked(size)
        }
    }

    /// A blank screen that keeps no history, so never dozes.
    fn untracked(size: TermSize) -> Self {
        Self::live(size, Some(Backlog::new(size.rows)))
    }

    /// A blank screen of `size` that draws every byte as it comes (the reference the deferred
    /// drawing is tested against).
    pub fn drawing_everything(size: TermSize) -> Self {
        Self::live(size, None)
    }

    fn live(size: TermSize, backlog: Option<Backlog>) -> Self {
        Self {
            model: Model::Live(Box::new(Live {
                canvas: Canvas::new(size),
                backlog,
            })),
            replay: None,
        }
    }

    /// Lets the parser go if the screen's history is short enough to replay when next asked
    /// (see `dormant.rs`); whether it went to sleep now.
    pub fn doze(&mut self) -> bool {
        let Model::Live(live) = &mut self.model else {
            return false;
        };
        let events = live.canvas.parser.callbacks();
        if !events.replies.is_empty() || !events.title_changes.is_empty() {
            // Not taken yet: they would be lost.
            return false;
        }
        let Some(replay) = self.replay.take() else {
            return false;
        };
        let dormant = Dormant {
            replay,
            title: events.title.clone(),
            bells: events.bells,
            application_cursor: live.screen().application_cursor(),
            bracketed_paste: live.screen().bracketed_paste(),
            skipped: live.backlog.as_ref().map_or(0, Backlog::skipped),
        };
        self.model = Model::Dormant(Box::new(dormant));
        true
    }

    /// The model, woken first if it sleeps.
    fn awake(&mut self) -> Awake<'_> {
        if let Model::Dormant(dormant) = &self.model {
            let woken = dormant.replay.replayed();
            if let Model::Dormant(dormant) = std::mem::replace(&mut self.model, woken) {
                self.replay = Some(dormant.replay);
            }
        }
        match &mut self.model {
            Model::Live(live) => Awake::Live(live),
            Model::Finished(finished) => Awake::Finished(finished),
            Model::Dormant(_) => unreachable!("woken above"),
        }
    }

    /// The live model, woken, once `keep` has kept what it is told for a replay (or the replay
    /// is dropped when `keep` says it grew too long); `None` once finished.
    fn told(&mut self, keep: impl FnOnce(&mut Replay) -> bool) -> Option<&mut Live> {
        if let Awake::Finished(_) = self.awake() {
            return None;
        }
        if let Some(replay) = &mut self.replay
            && !keep(replay)
        {
            self.replay = None;
        }
        match &mut self.model {
            Model::Live(live) => Some(live),
            _ => None,
        }
    }

    /// Feeds program output into the model (a finished screen takes no more).
    pub fn process(&mut self, bytes: &[u8]) {
        let Some(live) = self.told(|replay| replay.output(bytes)) else {
            return;
        };
        let Live { canvas, backlog } = live;
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
        if let Model::Live(live) = &mut self.model {
            live.catch_up();
        }
    }

    /// Whether output is waiting to be drawn (a sleeping screen draws when woken).
    pub fn has_backlog(&self) -> bool {
        match &self.model {
            Model::Live(live) => live.backlog.as_ref().is_some_and(Backlog::is_pending),
            Model::Dormant(_) | Model::Finished(_) => false,
        }
    }

    /// Whether it sleeps (see `doze`).
    #[cfg(test)]
    fn is_dormant(&self) -> bool {
        matches!(self.model, Model::Dormant(_))
    }

    /// Output bytes that scrolled away before anyone looked, and so were never drawn.
    pub fn skipped_bytes(&self) -> u64 {
        match &self.model {
            Model::Live(live) => live.backlog.as_ref().map_or(0, Backlog::skipped),
            Model::Dormant(dormant) => dormant.skipped,
            Model::Finished(finished) => finished.skipped,
        }
    }

    /// Changes the model's size, as the PTY's was (a finished screen keeps its size).
    pub fn resize(&mut self, size: TermSize) {
        let Some(live) = self.told(|replay| replay.resize(size)) else {
            return;
        };
        live.catch_up();
        live.canvas
            .parser
            .set_size(nonzero(size.rows), nonzero(size.cols));
        if let Some(backlog) = &mut live.backlog {
            backlog.resized(size.rows);
        }
    }

    /// Bytes that redraw this screen, modes included, on a terminal in any prior state.
    ///
    /// vt100's formatted state does not switch screens, so the switch is prepended: a viewer that
    /// attaches while vim runs must land on the alternate screen, and one resynced after vim quit
    /// must leave it.
    pub fn redraw(&mut self) -> Vec<u8> {
        match self.awake() {
            Awake::Live(live) => live.redraw(),
            Awake::Finished(finished) => finished.redraw.clone(),
        }
    }

    // Title, bells and input modes change only with output that is drawn at once, so reading
    // them needs no catching up.

    /// The window title the program set (OSC 0/2), or empty.
    pub fn title(&self) -> &str {
        match &self.model {
            Model::Live(live) => &live.canvas.parser.callbacks().title,
            Model::Dormant(dormant) => &dormant.title,
            Model::Finished(finished) => &finished.text.title,
        }
    }

    /// How many times the program rang the bell.
    pub fn bells(&self) -> u64 {
        match &self.model {
            Model::Live(live) => live.canvas.parser.callbacks().bells,
            Model::Dormant(dormant) => dormant.bells,
            Model::Finished(finished) => finished.text.bells,
        }
    }

    /// The answers owed to the program for the queries in the output processed so far.
    pub fn take_replies(&mut self) -> Vec<(QueryKind, Vec<u8>)> {
        match &mut self.model {
            Model::Live(live) => std::mem::take(&mut live.canvas.parser.callbacks_mut().replies),
            Model::Dormant(_) | Model::Finished(_) => Vec::new(),
        }
    }

    /// The titles the program set since the last call, oldest first (at most
    /// `MAX_TITLE_CHANGES`, the newest always among them).
    pub fn take_title_changes(&mut self) -> Vec<String> {
        match &mut self.model {
            Model::Live(live) => {
                std::mem::take(&mut live.canvas.parser.callbacks_mut().title_changes)
            }
            Model::Dormant(_) | Model::Finished(_) => Vec::new(),
        }
    }

    /// Whether the program switched cursor keys to application mode (DECCKM).
    pub fn application_cursor(&self) -> bool {
        match &self.model {
            Model::Live(live) => live.screen().application_cursor(),
            Model::Dormant(dormant) => dormant.application_cursor,
            Model::Finished(finished) => finished.application_cursor,
        }
    }

    /// Whether the program asked for bracketed paste.
    pub fn bracketed_paste(&self) -> bool {
        match &self.model {
            Model::Live(live) => live.screen().bracketed_paste(),
            Model::Dormant(dormant) => dormant.bracketed_paste,
            Model::Finished(finished) => finished.text.bracketed_paste,
        }
    }

    /// The visible screen with its colours and attributes, as escape sequences a terminal would
    /// render (no mode changes).
    pub fn ansi(&mut self) -> String {
        match self.awake() {
            Awake::Live(live) => {
                live.catch_up();
                live.screen().contents_formatted()
            }
            Awake::Finished(finished) => finished.ansi.clone(),
        }
    }

    /// Up to `n` rows of scrollback above the visible screen, oldest first, trailing blanks
    /// removed. The alternate screen has none.
    pub fn scrollback_lines(&mut self, n: usize) -> Vec<String> {
        match self.awake() {
            Awake::Live(live) => live.scrollback_lines(n),
            Awake::Finished(finished) => {
                let kept = &finished.scrollback;
                kept[kept.len().saturating_sub(n)..].to_vec()
            }
        }
    }

    /// The screen as text.
    pub fn text(&mut self) -> ScreenText {
        match self.awake() {
            Awake::Live(live) => live.text(),
            Awake::Finished(finished) => finished.text.clone(),
        }
    }

    /// Keeps only what can still be asked of a screen whose output has ended, drawn once, and
    /// lets the parser go.
    pub fn finish(&mut self) {
        if let Awake::Live(live) = self.awake() {
            self.model = Model::Finished(Box::new(live.finished()));
            self.replay = None;
        }
    }

    /// What can still be asked of this screen, as bytes to keep on disk (`Screen::from_saved`
    /// makes a finished screen of them).
    pub fn saved(&mut self) -> Vec<u8> {
        let json = match self.awake() {
            Awake::Live(live) => serde_json::to_vec(&live.finished()),
            Awake::Finished(finished) => serde_json::to_vec(finished),
        };
        json.unwrap_or_default()
    }

    /// The finished screen `saved` returned the bytes of; `None` if they are not such.
    pub fn from_saved(bytes: &[u8]) -> Option<Self> {
        let finished: Finished = serde_json::from_slice(bytes).ok()?;
        Some(Self {
            model: Model::Finished(Box::new(finished)),
            replay: None,
        })
    }

    /// Whether `finish` was called.
    pub fn is_finished(&self) -> bool {
        matches!(self.model, Model::Finished(_))
    }
}

/// A screen's model once woken.
enum Awake<'a> {
    Live(&'a mut Live),
    Finished(&'a Finished),
}

fn nonzero(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN)
}

#[cfg(test)]
mod tests;
