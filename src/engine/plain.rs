//! Output as plain text: escape sequences removed, for `recentOutput` and pattern waits.

/// Collects the printable characters, newlines and tabs the parser sees.
struct PlainText(String);

impl vte::Perform for PlainText {
    fn print(&mut self, c: char) {
        self.0.push(c);
    }

    fn execute(&mut self, byte: u8) {
        if matches!(byte, b'\n' | b'\t') {
            self.0.push(byte as char);
        }
    }
}

/// `bytes` without a leading partial UTF-8 character (output cut mid-character by the ring).
pub fn skip_partial_char(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| (b & 0xC0) != 0x80)
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// `bytes` without escape sequences or control characters (but newlines and tabs). A leading
/// partial UTF-8 character is dropped.
pub fn plain_text(bytes: &[u8]) -> String {
    let bytes = skip_partial_char(bytes);
    let mut text = PlainText(String::with_capacity(bytes.len()));
    vte::Parser::new().advance(&mut text, bytes);
    text.0
}

/// The last `max_lines` lines of `bytes` as plain text, joined with `\n`. Only the tail is
/// parsed, so the cost follows the lines asked for, not the size of the buffer.
pub fn plain_text_tail(bytes: &[u8], max_lines: usize) -> String {
    // One newline more than asked for marks where the wanted lines start (a line may end
    // without one).
    let start = memchr::memrchr_iter(b'\n', bytes)
        .nth(max_lines)
        .map_or(0, |i| i + 1);
    let text = plain_text(&bytes[start..]);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_escapes_and_keeps_the_tail() {
        let bytes = b"\x80\x80one\r\n\x1b[31mtwo\x1b[0m\r\nthree\r\n";
        assert_eq!(plain_text_tail(bytes, 2), "two\nthree");
        assert_eq!(plain_text_tail(bytes, 10), "one\ntwo\nthree");
        assert_eq!(plain_text(b"a\x1b]0;title\x07b\tc\x07\x1b[?1049h"), "ab\tc");
        assert_eq!(plain_text_tail(b"no newline", 3), "no newline");
    }
}
