//! Key names (tmux style: `Enter`, `C-c`, `M-x`, `Up`, `F5`, …) and the bytes a terminal sends
//! for them.
//!
//! Names are parsed before anything is sent, so one unknown name refuses the whole request.
//! Encoding happens at send time because cursor keys depend on the program's mode (DECCKM).

/// A key with its modifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    base: BaseKey,
    ctrl: bool,
    meta: bool,
    shift: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BaseKey {
    Char(char),
    Enter,
    Escape,
    Tab,
    BackTab,
    Backspace,
    /// Cursor keys and Home/End: the final byte of `CSI x` / `SS3 x`.
    Cursor(u8),
    /// Keys sent as `CSI n ~`.
    Tilde(u8),
    /// F1–F4: the final byte of `SS3 x`.
    Pf(u8),
}

/// The special key names, for documentation and error messages.
pub const SPECIAL_KEY_NAMES: &[&str] = &[
    "Enter", "Escape", "Tab", "BTab", "BSpace", "Space", "Up", "Down", "Left", "Right", "Home",
    "End", "PageUp", "PageDown", "Insert", "Delete", "F1", "F2", "F3", "F4", "F5", "F6", "F7",
    "F8", "F9", "F10", "F11", "F12",
];

/// Parses a key name: an optional run of `C-`, `M-`, `S-` prefixes, then a special key name
/// (case-insensitive; tmux aliases such as `PPage`, `DC`, `Esc` too) or one character.
pub fn parse_key(name: &str) -> Result<Key, String> {
    let mut rest = name;
    let (mut ctrl, mut meta, mut shift) = (false, false, false);
    // A lone "C", "M" or "S" and "M--" (Meta plus '-') are keys, not prefixes.
    while let Some(prefix) = rest.get(..2).filter(|_| rest.len() > 2) {
        match prefix {
            "C-" | "c-" => ctrl = true,
            "M-" | "m-" => meta = true,
            "S-" | "s-" => shift = true,
            _ => break,
        }
        rest = &rest[2..];
    }
    let base = base_key(rest).ok_or_else(|| format!("unknown key name: {name:?}"))?;
    let key = Key {
        base,
        ctrl,
        meta,
        shift,
    };
    key.check()
        .map_err(|why| format!("unsupported key {name:?}: {why}"))?;
    Ok(key)
}

fn base_key(name: &str) -> Option<BaseKey> {
    let mut chars = name.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return Some(BaseKey::Char(c));
    }
    Some(match name.to_ascii_lowercase().as_str() {
        "enter" | "return" | "cr" => BaseKey::Enter,
        "escape" | "esc" => BaseKey::Escape,
        "tab" => BaseKey::Tab,
        "btab" => BaseKey::BackTab,
        "bspace" | "backspace" => BaseKey::Backspace,
        "space" => BaseKey::Char(' '),
        "up" => BaseKey::Cursor(b'A'),
        "down" => BaseKey::Cursor(b'B'),
        "right" => BaseKey::Cursor(b'C'),
        "left" => BaseKey::Cursor(b'D'),
        "home" => BaseKey::Cursor(b'H'),
        "end" => BaseKey::Cursor(b'F'),
        "insert" | "ic" => BaseKey::Tilde(2),
        "delete" | "dc" => BaseKey::Tilde(3),
        "pageup" | "ppage" | "pgup" => BaseKey::Tilde(5),
        "pagedown" | "npage" | "pgdn" => BaseKey::Tilde(6),
        "f1" => BaseKey::Pf(b'P'),
        "f2" => BaseKey::Pf(b'Q'),
        "f3" => BaseKey::Pf(b'R'),
        "f4" => BaseKey::Pf(b'S'),
        "f5" => BaseKey::Tilde(15),
        "f6" => BaseKey::Tilde(17),
        "f7" => BaseKey::Tilde(18),
        "f8" => BaseKey::Tilde(19),
        "f9" => BaseKey::Tilde(20),
        "f10" => BaseKey::Tilde(21),
        "f11" => BaseKey::Tilde(23),
        "f12" => BaseKey::Tilde(24),
        _ => return None,
    })
}

impl Key {
    /// Refuses modifier combinations a terminal has no bytes for.
    fn check(&self) -> Result<(), &'static str> {
        match self.base {
            BaseKey::Char(c) if self.ctrl && ctrl_byte(c).is_none() => {
                Err("Ctrl goes with letters, space and @[\\]^_?")
            }
            BaseKey::Enter
            | BaseKey::Escape
            | BaseKey::Tab
            | BaseKey::Backspace
            | BaseKey::BackTab
                if self.ctrl || self.shift =>
            {
                Err("only Meta (M-) combines with this key")
            }
            _ => Ok(()),
        }
    }

    /// The bytes a terminal sends for this key; `application_cursor` is the program's DECCKM.
    pub fn encode(&self, application_cursor: bool) -> Vec<u8> {
        // xterm's modifier parameter: 1 + shift + 2·meta + 4·ctrl.
        let modifier = 1 + u8::from(self.shift) + 2 * u8::from(self.meta) + 4 * u8::from(self.ctrl);
        let mut out = Vec::new();
        match self.base {
            BaseKey::Char(c) => {
                if self.meta {
                    out.push(0x1b);
                }
                match (self.ctrl, self.shift) {
                    (true, _) => out.push(ctrl_byte(c).unwrap_or(c as u8)),
                    (false, true) => out.extend(c.to_uppercase().to_string().as_bytes()),
                    (false, false) => out.extend(c.to_string().as_bytes()),
                }
            }
            BaseKey::Enter
            | BaseKey::Escape
            | BaseKey::Tab
            | BaseKey::Backspace
            | BaseKey::BackTab => {
                if self.meta {
                    out.push(0x1b);
                }
                out.extend_from_slice(match self.base {
                    BaseKey::Enter => b"\r",
                    BaseKey::Escape => b"\x1b",
                    BaseKey::Tab => b"\t",
                    BaseKey::Backspace => b"\x7f",
                    _ => b"\x1b[Z",
                });
            }
            BaseKey::Cursor(fin) if modifier > 1 => {
                out.extend(format!("\x1b[1;{modifier}").as_bytes());
                out.push(fin);
            }
            BaseKey::Cursor(fin) => {
                out.extend_from_slice(if application_cursor {
                    b"\x1bO"
                } else {
                    b"\x1b["
                });
                out.push(fin);
            }
            BaseKey::Pf(fin) if modifier > 1 => {
                out.extend(format!("\x1b[1;{modifier}").as_bytes());
                out.push(fin);
            }
            BaseKey::Pf(fin) => {
                out.extend_from_slice(b"\x1bO");
                out.push(fin);
            }
            BaseKey::Tilde(n) if modifier > 1 => {
                out.extend(format!("\x1b[{n};{modifier}~").as_bytes())
            }
            BaseKey::Tilde(n) => out.extend(format!("\x1b[{n}~").as_bytes()),
        }
        out
    }
}

/// The control character for `C-c`: letters, space and `@[\]^_?`.
fn ctrl_byte(c: char) -> Option<u8> {
    match c.to_ascii_lowercase() {
        c @ 'a'..='z' => Some(c as u8 - b'a' + 1),
        ' ' | '@' | '2' => Some(0),
        '[' | '3' => Some(0x1b),
        '\\' | '4' => Some(0x1c),
        ']' | '5' => Some(0x1d),
        '^' | '6' => Some(0x1e),
        '_' | '7' | '-' => Some(0x1f),
        '?' | '8' => Some(0x7f),
        _ => None,
    }
}

/// Pasted text as the program gets it: wrapped in bracketed-paste markers when the program
/// enabled them, and never carrying an escape. Every ESC (and the C1 CSI, U+009B) is removed, as
/// alacritty does: with no ESC, no end marker can be reassembled however the text nests or splits
/// it, and in a program without bracketed paste no pasted text turns into keys (Escape, arrows)
/// or commands.
pub fn paste_bytes(text: &str, bracketed: bool) -> Vec<u8> {
    let clean: String = text
        .chars()
        .filter(|&c| c != '\u{1b}' && c != '\u{9b}')
        .collect();
    if !bracketed {
        return clean.into_bytes();
    }
    let mut out = Vec::with_capacity(clean.len() + 12);
    out.extend_from_slice(b"\x1b[200~");
    out.extend_from_slice(clean.as_bytes());
    out.extend_from_slice(b"\x1b[201~");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(name: &str, app: bool) -> Vec<u8> {
        parse_key(name).unwrap().encode(app)
    }

    #[test]
    fn the_key_table() {
        let table: &[(&str, &[u8])] = &[
            ("Enter", b"\r"),
            ("Escape", b"\x1b"),
            ("Esc", b"\x1b"),
            ("Tab", b"\t"),
            ("BTab", b"\x1b[Z"),
            ("BSpace", b"\x7f"),
            ("Space", b" "),
            ("Up", b"\x1b[A"),
            ("Down", b"\x1b[B"),
            ("Right", b"\x1b[C"),
            ("Left", b"\x1b[D"),
            ("Home", b"\x1b[H"),
            ("End", b"\x1b[F"),
            ("PageUp", b"\x1b[5~"),
            ("PPage", b"\x1b[5~"),
            ("PageDown", b"\x1b[6~"),
            ("NPage", b"\x1b[6~"),
            ("Insert", b"\x1b[2~"),
            ("Delete", b"\x1b[3~"),
            ("DC", b"\x1b[3~"),
            ("F1", b"\x1bOP"),
            ("F4", b"\x1bOS"),
            ("F5", b"\x1b[15~"),
            ("F10", b"\x1b[21~"),
            ("F12", b"\x1b[24~"),
            ("C-c", b"\x03"),
            ("C-C", b"\x03"),
            ("C-a", b"\x01"),
            ("C-z", b"\x1a"),
            ("C-Space", b"\x00"),
            ("C-[", b"\x1b"),
            ("C-\\", b"\x1c"),
            ("C-]", b"\x1d"),
            ("C-_", b"\x1f"),
            ("M-x", b"\x1bx"),
            ("M-Enter", b"\x1b\r"),
            ("M-C-a", b"\x1b\x01"),
            ("C-M-a", b"\x1b\x01"),
            ("S-a", b"A"),
            ("C-Up", b"\x1b[1;5A"),
            ("S-Left", b"\x1b[1;2D"),
            ("M-Right", b"\x1b[1;3C"),
            ("C-S-End", b"\x1b[1;6F"),
            ("C-Delete", b"\x1b[3;5~"),
            ("S-F5", b"\x1b[15;2~"),
            ("C-F1", b"\x1b[1;5P"),
            ("a", b"a"),
            ("C", b"C"),
            ("-", b"-"),
            ("M--", b"\x1b-"),
            ("\u{e9}", "\u{e9}".as_bytes()),
        ];
        for (name, expected) in table {
            assert_eq!(&bytes(name, false), expected, "{name}");
        }
    }

    #[test]
    fn cursor_keys_follow_application_mode() {
        assert_eq!(bytes("Up", true), b"\x1bOA");
        assert_eq!(bytes("End", true), b"\x1bOF");
        assert_eq!(bytes("C-Up", true), b"\x1b[1;5A");
        assert_eq!(bytes("PageUp", true), b"\x1b[5~");
    }

    #[test]
    fn unknown_and_impossible_keys_are_refused() {
        for bad in ["Foo", "C-", "F13", "", "C-Enter", "S-Tab", "C-é", "Up-"] {
            let err = parse_key(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn paste_is_bracketed_only_when_enabled_and_cannot_be_escaped() {
        assert_eq!(paste_bytes("a\nb", false), b"a\nb");
        assert_eq!(paste_bytes("a\nb", true), b"\x1b[200~a\nb\x1b[201~");
        assert_eq!(
            paste_bytes("x\x1b[201~rm -rf /\r", true),
            b"\x1b[200~x[201~rm -rf /\r\x1b[201~"
        );
        // Nested: removing one marker must not leave another behind.
        let nested = paste_bytes("one\x1b[20\x1b[201~1~\rtouch x\r", true);
        assert_eq!(nested.windows(6).filter(|w| w == b"\x1b[201~").count(), 1);
        assert!(nested.ends_with(b"\x1b[201~"));
        assert_eq!(paste_bytes("\u{9b}201~a\x1bb", false), b"201~ab");
    }
}
