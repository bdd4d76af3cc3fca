//! Fuzz targets: entry points that take arbitrary bytes and must never panic. `cargo fuzz`
//! runs them coverage-guided (the `fuzz/` crate, by hand, as long as you like); the test suite
//! runs them briefly on generated inputs and on every saved input in `fuzz/regressions/`.

use crate::engine::{SCREEN_SCROLLBACK_ROWS, Screen, TermSize, parse_key};
use crate::protocol::{CompatClientMessage, RawClientMessage};

/// The WebSocket control-message decoders refuse anything malformed without panicking.
pub fn control_messages(data: &[u8]) {
    let _ = serde_json::from_slice::<RawClientMessage>(data);
    let _ = serde_json::from_slice::<CompatClientMessage>(data);
}

/// Any string parses as a key name or is refused; what parses encodes in both cursor modes.
pub fn key_names(data: &[u8]) {
    let name = String::from_utf8_lossy(data);
    if let Ok(key) = parse_key(&name) {
        assert!(!key.encode(false).is_empty());
        assert!(!key.encode(true).is_empty());
    }
}

/// The screen model takes any bytes at any size, and deferring what only prints never changes
/// what it shows: the first two bytes choose the size, and each 0xFF byte in the rest resizes
/// the screen (to the sizes given by the two bytes after it).
pub fn screen_model(data: &[u8]) {
    let size = |c: u8, r: u8| {
        TermSize::new(u16::from(c % 200) + 1, u16::from(r % 60) + 1).expect("within bounds")
    };
    let (cols, rows, rest) = match data {
        [c, r, rest @ ..] => (*c, *r, rest),
        _ => return,
    };
    let mut screen = Screen::new(size(cols, rows));
    let mut reference = Screen::drawing_everything(size(cols, rows));
    let mut chunks = rest.split(|&b| b == 0xff);
    if let Some(first) = chunks.next() {
        screen.process(first);
        reference.process(first);
    }
    for chunk in chunks {
        if let [c, r, bytes @ ..] = chunk {
            screen.resize(size(*c, *r));
            reference.resize(size(*c, *r));
            screen.process(bytes);
            reference.process(bytes);
        }
    }
    assert_same_screen(&mut screen, &mut reference, data.len());
}

/// What a screen shows without drawing its backlog — title, bells, input modes, answers owed —
/// is the same in `deferred` as in `reference` (which drew every byte); `at` names the point.
pub fn assert_same_state(deferred: &mut Screen, reference: &mut Screen, at: usize) {
    assert_eq!(deferred.title(), reference.title(), "title at {at}");
    assert_eq!(deferred.bells(), reference.bells(), "bells at {at}");
    assert_eq!(
        (deferred.application_cursor(), deferred.bracketed_paste()),
        (reference.application_cursor(), reference.bracketed_paste()),
        "input modes at {at}"
    );
    assert_eq!(
        deferred.take_replies(),
        reference.take_replies(),
        "replies at {at}"
    );
}

/// Everything a client can read from the two screens is the same: the state above, and the
/// text, cursor, redraw (modes, colours), colours and scrollback.
pub fn assert_same_screen(deferred: &mut Screen, reference: &mut Screen, at: usize) {
    assert_same_state(deferred, reference, at);
    let (a, b) = (deferred.text(), reference.text());
    assert_eq!(a.lines, b.lines, "lines at {at}");
    assert_eq!(
        (a.cursor_row, a.cursor_col),
        (b.cursor_row, b.cursor_col),
        "cursor at {at}"
    );
    assert_eq!(a.alternate_screen, b.alternate_screen);
    assert!(
        deferred.redraw() == reference.redraw(),
        "redraw (modes, colours) differs at {at}"
    );
    assert_eq!(deferred.ansi(), reference.ansi(), "colours at {at}");
    assert_eq!(
        deferred.scrollback_lines(SCREEN_SCROLLBACK_ROWS),
        reference.scrollback_lines(SCREEN_SCROLLBACK_ROWS),
        "scrollback at {at}"
    );
}
