//! Text from es.xml, HCL, file names or libvirt, made safe to print on a terminal. An
//! operator reads berth's errors on a TTY, and a name or id in them comes from files others
//! write: an escape sequence hidden in one could clear the screen, hide lines, retitle the
//! window or write the clipboard (OSC 52). Control characters are therefore shown, never sent.
//!
//! A leaf module: `config`, `render` and `cli` use it.

use std::borrow::Cow;

/// Whether `c` acts on a terminal or on how the text is laid out: C0 and C1 control characters
/// (ESC, BEL, CR, the 8-bit CSI U+009B, …) and the Unicode bidirectional overrides and
/// isolates, which reorder what is shown ("Trojan Source"). Newline and tab are not counted.
pub fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Whether `text` holds an [`is_unsafe`] character, read from its UTF-8 bytes: errors and
/// snippets are scanned whole, and most hold none.
pub fn has_unsafe(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| match b {
        b'\n' | b'\t' => false,
        0..=0x1f | 0x7f => true,
        // C1 controls: U+0080..U+009F.
        0xc2 => matches!(bytes.get(i + 1), Some(0x80..=0x9f)),
        // U+202A..U+202E and U+2066..U+2069.
        0xe2 => matches!(
            (bytes.get(i + 1), bytes.get(i + 2)),
            (Some(0x80), Some(0xaa..=0xae)) | (Some(0x81), Some(0xa6..=0xa9))
        ),
        _ => false,
    })
}

/// `text` with every [`is_unsafe`] character written as a visible `\u{1b}` escape; newlines
/// and tabs stay (berth's own messages use them).
pub fn escape(text: &str) -> Cow<'_, str> {
    if !has_unsafe(text) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if is_unsafe(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// `text` for one line of output: as [`escape`], and line breaks escaped too, so that a name
/// holding one cannot start a line of its own (a forged `Success!` in a CI log).
pub fn one_line(text: &str) -> Cow<'_, str> {
    if !text.contains('\n') {
        return escape(text);
    }
    Cow::Owned(escape(text).replace('\n', "\\u{a}"))
}

/// `text` with every [`is_unsafe`] character replaced by as many `?` as it has bytes, so that
/// byte offsets into it (the source spans of a snippet) stay valid. A CR before a newline
/// stays (CRLF files).
pub fn blank(text: &str) -> Cow<'_, str> {
    if !has_unsafe(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' && chars.peek() == Some(&'\n') {
            out.push(c);
        } else if is_unsafe(c) {
            out.extend(std::iter::repeat_n('?', c.len_utf8()));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` (berth's own rendering, which may colour it) with every [`is_unsafe`] character
/// escaped as in [`escape`], except the colour sequences (SGR: `ESC [ digits ; … m`) when
/// `keep_colour`. What those sequences came from is already escaped where it was read.
pub fn escape_keeping_colour(text: &str, keep_colour: bool) -> Cow<'_, str> {
    if !keep_colour {
        return escape(text);
    }
    if !has_unsafe(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '\u{1b}'
            && let Some(len) = sgr_len(rest)
        {
            out.push_str(&rest[..len]);
            rest = &rest[len..];
            continue;
        }
        if is_unsafe(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    Cow::Owned(out)
}

/// The length of the SGR sequence `text` starts with, if it starts with one.
fn sgr_len(text: &str) -> Option<usize> {
    let body = text.strip_prefix("\u{1b}[")?;
    let params = body
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b';' || *b == b':')
        .count();
    (body.as_bytes().get(params) == Some(&b'm')).then_some(2 + params + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_overrides_are_escaped_newlines_and_tabs_kept() {
        assert_eq!(escape("exa01vm01"), "exa01vm01");
        assert!(matches!(escape("plain\ttext\n"), Cow::Borrowed(_)));
        assert_eq!(
            escape("vm\u{1b}]0;x\u{7}\r\u{9b}2J\u{202e}"),
            "vm\\u{1b}]0;x\\u{7}\\u{d}\\u{9b}2J\\u{202e}"
        );
    }

    #[test]
    fn the_byte_scan_finds_exactly_the_unsafe_characters() {
        for c in (0..=0x3000u32)
            .chain(0xfff0..=0x10ffff)
            .filter_map(char::from_u32)
        {
            assert_eq!(has_unsafe(&format!("a{c}b")), is_unsafe(c), "{:?}", c);
        }
    }

    #[test]
    fn one_line_escapes_line_breaks_too() {
        assert_eq!(one_line("a\tb"), "a\tb");
        assert_eq!(one_line("a\nSuccess!\u{1b}"), "a\\u{a}Success!\\u{1b}");
    }

    #[test]
    fn blanking_keeps_every_byte_offset() {
        let text = "a\u{1b}[2J\u{9b}b\u{202e}c\r\nd\re";
        let blanked = blank(text);
        assert_eq!(blanked.len(), text.len());
        assert_eq!(blanked, "a?[2J??b???c\r\nd?e");
        assert!(!blanked.chars().any(is_unsafe) || blanked.contains("\r\n"));
    }

    #[test]
    fn colour_is_kept_only_when_asked_and_nothing_else_is() {
        let text = "\u{1b}[1;31m×\u{1b}[0m name \u{1b}]0;t\u{7}\u{1b}[2J";
        assert_eq!(
            escape_keeping_colour(text, true),
            "\u{1b}[1;31m×\u{1b}[0m name \\u{1b}]0;t\\u{7}\\u{1b}[2J"
        );
        assert!(!escape_keeping_colour(text, false).contains('\u{1b}'));
    }
}
