//! The terminal of record: monkeyproof answers the questions programs ask their terminal
//! (cursor position, device attributes, modes, colours, sizes) itself, once, from the screen model
//! and documented defaults, whether or not viewers are attached. Full-screen agents (Ink,
//! crossterm, ratatui) wait for these answers at start-up; with no browser attached nobody else
//! would give them.
//!
//! The whole policy is here: `answer_csi` / `answer_osc` decide what is answered and how;
//! `classify_replies` recognises the same answers coming from a viewer's terminal emulator, so
//! that they can be dropped instead of reaching the program twice.
//!
//! | query | answer |
//! |---|---|
//! | `CSI 6 n` (cursor position) | `CSI row ; col R`, from the screen model at that byte |
//! | `CSI 5 n` (status) | `CSI 0 n` |
//! | `CSI c`, `CSI 0 c` (primary DA) | `CSI ? 1 ; 2 c` (VT100 with AVO, as xterm.js) |
//! | `CSI > c`, `CSI > 0 c` (secondary DA) | `CSI > 0 ; 276 ; 0 c` (as xterm.js) |
//! | `CSI ? Ps $ p` (DECRQM) | `CSI ? Ps ; 1/2 $ y` for modes the model tracks, `; 0` otherwise |
//! | `CSI 18 t` / `14 t` / `16 t` | size in cells / pixels (8×16 px cells) / cell size |
//! | `OSC 10 ; ?` / `OSC 11 ; ?` | foreground / background colour of the page's theme |
//!
//! Everything else (title reports `CSI 21 t`, DECRQSS, OSC 50 font queries, OSC 52 clipboard
//! reads, kitty keyboard flags `CSI ? u`, XTVERSION…) is never answered by the server: it reaches
//! viewers as part of the output, like any other byte.

use std::sync::LazyLock;

use regex::bytes::Regex;

/// Cell size in pixels (height, width) used for pixel-size reports.
pub const CELL_PIXELS: (u16, u16) = (16, 8);
/// The primary device attributes reported: a VT100 with Advanced Video Option.
pub const PRIMARY_DA: &[u8] = b"\x1b[?1;2c";
/// The secondary device attributes reported.
pub const SECONDARY_DA: &[u8] = b"\x1b[>0;276;0c";
/// Colours reported for OSC 10 / OSC 11 (the web page's theme: #d8dee9 on #111418).
pub const FOREGROUND: &str = "rgb:d8d8/dede/e9e9";
pub const BACKGROUND: &str = "rgb:1111/1414/1818";

/// The kinds of query the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    CursorPosition,
    Status,
    PrimaryAttributes,
    SecondaryAttributes,
    Mode,
    SizeInCells,
    SizeInPixels,
    CellSize,
    Foreground,
    Background,
}

/// The answer to a CSI sequence the screen model did not handle, if the server answers it.
pub fn answer_csi(
    screen: &vt100::Screen,
    i1: Option<u8>,
    i2: Option<u8>,
    params: &[&[u16]],
    c: char,
) -> Option<(QueryKind, Vec<u8>)> {
    let first = params.first().and_then(|p| p.first()).copied();
    let (rows, cols) = screen.size();
    let (rows, cols) = (rows.get(), cols.get());
    let reply = |kind, text: String| Some((kind, text.into_bytes()));
    match (i1, i2, c, first) {
        (None, None, 'n', Some(6)) => {
            let (row, col) = screen.cursor_position();
            reply(
                QueryKind::CursorPosition,
                format!("\x1b[{};{}R", row + 1, col + 1),
            )
        }
        (None, None, 'n', Some(5)) => reply(QueryKind::Status, "\x1b[0n".into()),
        (None, None, 'c', None | Some(0)) => {
            Some((QueryKind::PrimaryAttributes, PRIMARY_DA.to_vec()))
        }
        (Some(b'>'), None, 'c', None | Some(0)) => {
            Some((QueryKind::SecondaryAttributes, SECONDARY_DA.to_vec()))
        }
        (Some(b'?'), Some(b'$'), 'p', Some(mode)) => {
            let state = mode_state(screen, mode);
            reply(QueryKind::Mode, format!("\x1b[?{mode};{state}$y"))
        }
        (None, None, 't', Some(18)) => {
            reply(QueryKind::SizeInCells, format!("\x1b[8;{rows};{cols}t"))
        }
        (None, None, 't', Some(14)) => reply(
            QueryKind::SizeInPixels,
            format!(
                "\x1b[4;{};{}t",
                u32::from(rows) * u32::from(CELL_PIXELS.0),
                u32::from(cols) * u32::from(CELL_PIXELS.1)
            ),
        ),
        (None, None, 't', Some(16)) => reply(
            QueryKind::CellSize,
            format!("\x1b[6;{};{}t", CELL_PIXELS.0, CELL_PIXELS.1),
        ),
        _ => None,
    }
}

/// The answer to an OSC sequence the screen model did not handle, if the server answers it.
pub fn answer_osc(params: &[&[u8]]) -> Option<(QueryKind, Vec<u8>)> {
    let (kind, number, colour) = match params {
        [b"10", b"?"] => (QueryKind::Foreground, 10, FOREGROUND),
        [b"11", b"?"] => (QueryKind::Background, 11, BACKGROUND),
        _ => return None,
    };
    Some((kind, format!("\x1b]{number};{colour}\x1b\\").into_bytes()))
}

/// DECRPM's state of a private mode: 1 set, 2 reset, 0 not recognised.
fn mode_state(screen: &vt100::Screen, mode: u16) -> u8 {
    use vt100::{MouseProtocolEncoding as Enc, MouseProtocolMode as Mouse};
    let set = match mode {
        1 => screen.application_cursor(),
        25 => !screen.hide_cursor(),
        47 | 1047 | 1049 => screen.alternate_screen(),
        2004 => screen.bracketed_paste(),
        9 => screen.mouse_protocol_mode() == Mouse::Press,
        1000 => screen.mouse_protocol_mode() == Mouse::PressRelease,
        1002 => screen.mouse_protocol_mode() == Mouse::ButtonMotion,
        1003 => screen.mouse_protocol_mode() == Mouse::AnyMotion,
        1005 => screen.mouse_protocol_encoding() == Enc::Utf8,
        1006 => screen.mouse_protocol_encoding() == Enc::Sgr,
        _ => return 0,
    };
    if set { 1 } else { 2 }
}

/// Answers as a terminal emulator sends them, one alternative per kind.
static REPLY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?-u)\x1b(?:\[(?:(?P<cpr>\d+;\d+R)|(?P<status>0n)|(?P<da1>\?[\d;]*c)|(?P<da2>>[\d;]*c)|(?P<mode>\?\d+;\d\$y)|(?P<cells>8;\d+;\d+t)|(?P<pixels>4;\d+;\d+t)|(?P<cell>6;\d+;\d+t))|\](?:(?P<fg>10)|(?P<bg>11));[^\x07\x1b]*(?:\x07|\x1b\\))",
    )
    .expect("the reply pattern is valid")
});

/// The kinds of the answers `bytes` consists of, when it is nothing but such answers (as a
/// terminal emulator sends its automatic replies); `None` for anything else, typing included.
pub fn classify_replies(bytes: &[u8]) -> Option<Vec<QueryKind>> {
    let names = [
        ("cpr", QueryKind::CursorPosition),
        ("status", QueryKind::Status),
        ("da1", QueryKind::PrimaryAttributes),
        ("da2", QueryKind::SecondaryAttributes),
        ("mode", QueryKind::Mode),
        ("cells", QueryKind::SizeInCells),
        ("pixels", QueryKind::SizeInPixels),
        ("cell", QueryKind::CellSize),
        ("fg", QueryKind::Foreground),
        ("bg", QueryKind::Background),
    ];
    let mut kinds = Vec::new();
    let mut at = 0;
    for caps in REPLY.captures_iter(bytes) {
        let whole = caps.get(0)?;
        if whole.start() != at {
            return None;
        }
        at = whole.end();
        kinds.push(names.iter().find(|(n, _)| caps.name(n).is_some())?.1);
    }
    (at == bytes.len() && !kinds.is_empty()).then_some(kinds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen_after(bytes: &[u8]) -> vt100::Parser {
        let mut parser = vt100::Parser::new(24.try_into().unwrap(), 80.try_into().unwrap(), 0);
        parser.process(bytes);
        parser
    }

    #[test]
    fn answers_from_the_model() {
        let parser = screen_after(b"hello\r\nab\x1b[?2004h\x1b[?1h");
        let s = parser.screen();
        let answer = |i1, i2, params: &[&[u16]], c| answer_csi(s, i1, i2, params, c).map(|a| a.1);
        assert_eq!(answer(None, None, &[&[6]], 'n').unwrap(), b"\x1b[2;3R");
        assert_eq!(answer(None, None, &[&[5]], 'n').unwrap(), b"\x1b[0n");
        assert_eq!(answer(None, None, &[], 'c').unwrap(), PRIMARY_DA);
        assert_eq!(answer(Some(b'>'), None, &[], 'c').unwrap(), SECONDARY_DA);
        assert_eq!(
            answer(Some(b'?'), Some(b'$'), &[&[2004]], 'p').unwrap(),
            b"\x1b[?2004;1$y"
        );
        assert_eq!(
            answer(Some(b'?'), Some(b'$'), &[&[1049]], 'p').unwrap(),
            b"\x1b[?1049;2$y"
        );
        assert_eq!(
            answer(Some(b'?'), Some(b'$'), &[&[1]], 'p').unwrap(),
            b"\x1b[?1;1$y"
        );
        assert_eq!(
            answer(Some(b'?'), Some(b'$'), &[&[7777]], 'p').unwrap(),
            b"\x1b[?7777;0$y"
        );
        assert_eq!(answer(None, None, &[&[18]], 't').unwrap(), b"\x1b[8;24;80t");
        assert_eq!(
            answer(None, None, &[&[14]], 't').unwrap(),
            b"\x1b[4;384;640t"
        );
        assert_eq!(answer(None, None, &[&[16]], 't').unwrap(), b"\x1b[6;16;8t");
        // Never answered: title reports, kitty flags, anything unknown.
        assert_eq!(answer(None, None, &[&[21]], 't'), None);
        assert_eq!(answer(Some(b'?'), None, &[], 'u'), None);
        assert_eq!(answer(None, None, &[&[7]], 'n'), None);
        assert_eq!(
            answer_osc(&[b"11", b"?"]).unwrap().1,
            b"\x1b]11;rgb:1111/1414/1818\x1b\\"
        );
        assert_eq!(answer_osc(&[b"50", b"?"]), None);
        assert_eq!(answer_osc(&[b"11", b"rgb:0/0/0"]), None);
    }

    #[test]
    fn viewer_replies_are_told_from_typing() {
        use QueryKind::*;
        assert_eq!(classify_replies(b"\x1b[12;40R"), Some(vec![CursorPosition]));
        assert_eq!(
            classify_replies(b"\x1b[?1;2c\x1b[>0;276;0c\x1b]11;rgb:0000/0000/0000\x07"),
            Some(vec![PrimaryAttributes, SecondaryAttributes, Background])
        );
        assert_eq!(
            classify_replies(b"\x1b[?2004;1$y\x1b[8;24;80t"),
            Some(vec![Mode, SizeInCells])
        );
        for typing in [
            &b"ls\r"[..],
            b"\x1b[A",
            b"\x1b[12;40Rx",
            b"x\x1b[12;40R",
            b"",
            b"\x1b[15~",
        ] {
            assert_eq!(classify_replies(typing), None, "{typing:?}");
        }
    }
}
