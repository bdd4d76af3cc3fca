//! The screen of a session whose output has ended: everything that can still be asked of it,
//! drawn once. A live vt100 model costs ~32 bytes a cell of screen and scrollback (over 1 MB at
//! 200 columns); this costs the text and two renderings.

use super::ScreenText;

#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Finished {
    pub(super) text: ScreenText,
    /// The scrollback rows above the screen, oldest first.
    pub(super) scrollback: Vec<String>,
    /// What `Screen::redraw` returned.
    pub(super) redraw: Vec<u8>,
    /// What `Screen::ansi` returned.
    pub(super) ansi: String,
    pub(super) application_cursor: bool,
    pub(super) skipped: u64,
}
