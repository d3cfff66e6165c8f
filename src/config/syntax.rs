//! Turns hcl-edit's syntax errors into located [`ConfigError`]s, with extra help for the two
//! mistakes people make most: several attributes in a one-line block, and a missing `}`.

use hcl::edit::parser::Error as ParseError;

use super::error::{ConfigError, Note, located};
use super::model::{SourceFile, Span};

/// A syntax error in `files[file]`.
pub(crate) fn syntax_error(files: &[SourceFile], file: usize, error: &ParseError) -> ConfigError {
    let text = files.get(file).map_or("", |f| f.text.as_str());
    let offset = offset_of(text, error.location().line(), error.location().column());
    let at = Span {
        file,
        range: offset..offset,
    };
    let hcl_message = error.message();

    let end = text.trim_end().len();
    if offset >= end {
        let notes = unclosed_bracket(text)
            .map(|open| Note {
                span: Span {
                    file,
                    range: open..open + 1,
                },
                label: "this is never closed".into(),
            })
            .into_iter()
            .collect();
        let message = if hcl_message.contains("expected `}`") {
            "unexpected end of file: a block is not closed".to_string()
        } else {
            format!("unexpected end of file: {hcl_message}")
        };
        return located(
            files,
            &Span {
                file,
                range: end..end,
            },
            message,
            "the file ends here",
            Some("add the missing `}` (or `]`, `)`)".into()),
            notes,
        );
    }
    if hcl_message.starts_with("invalid block body") && second_attribute_on_line(text, offset) {
        return located(
            files,
            &at,
            "a block written on one line may hold only one attribute",
            "second attribute on the same line",
            Some(one_attribute_per_line(text, offset)),
            Vec::new(),
        );
    }
    if hcl_message.contains("redefined attribute") {
        let name: String = text[offset..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        return located(
            files,
            &Span {
                file,
                range: offset..offset + name.len(),
            },
            format!("attribute `{name}` is set twice in the same block"),
            "set again here",
            Some("keep one of the two lines".into()),
            Vec::new(),
        );
    }
    located(
        files,
        &at,
        format!("invalid HCL syntax: {hcl_message}"),
        "here",
        None,
        Vec::new(),
    )
}

/// Byte offset of a 1-based line and (character) column; past the end clamps to the end.
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        text.match_indices('\n')
            .nth(line - 2)
            .map_or(text.len(), |(i, _)| i + 1)
    };
    text[line_start..]
        .char_indices()
        .nth(column.saturating_sub(1))
        .map_or(text.len(), |(i, _)| line_start + i)
}

/// Whether the error is at an `identifier =` that follows a `{` on the same line, as in
/// `guest "x" { host = "a"  mode = "live" }`.
fn second_attribute_on_line(text: &str, offset: usize) -> bool {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[line_start..offset];
    let rest = &text[offset..];
    let ident_len = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(rest.len());
    before.contains('{') && ident_len > 0 && rest[ident_len..].trim_start().starts_with('=')
}

/// Help for a one-line block with two attributes: the block rewritten one attribute per line
/// when the line splits cleanly at `offset`, else the rule in words.
fn one_attribute_per_line(text: &str, offset: usize) -> String {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let rewrite = text[line_start..offset].rfind('{').and_then(|brace| {
        let header = text[line_start..line_start + brace + 1].trim();
        let first = text[line_start + brace + 1..offset].trim();
        let second = text[offset..line_end].trim_end().strip_suffix('}')?.trim();
        // A second `=` means a third attribute (or `=` inside a value): don't guess.
        (second.matches('=').count() == 1).then(|| format!("{header}\n  {first}\n  {second}\n}}"))
    });
    match rewrite {
        Some(block) => format!("put each attribute on its own line:\n{block}"),
        None => {
            "put each attribute on its own line, and the closing `}` on a line of its own".into()
        }
    }
}

/// Offset of the innermost `{`, `[` or `(` left open at the end of `text`, skipping strings
/// and comments. Heuristic: only used to point at a likely culprit.
fn unclosed_bracket(text: &str) -> Option<usize> {
    let mut open = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' | '\n' => break,
                        _ => {}
                    }
                }
            }
            '#' => skip_line(&mut chars),
            '/' if chars.peek().map(|&(_, c)| c) == Some('/') => skip_line(&mut chars),
            '/' if chars.peek().map(|&(_, c)| c) == Some('*') => {
                chars.next();
                let mut star = false;
                for (_, c) in chars.by_ref() {
                    if star && c == '/' {
                        break;
                    }
                    star = c == '*';
                }
            }
            '{' | '[' | '(' => open.push(i),
            '}' | ']' | ')' => {
                open.pop();
            }
            _ => {}
        }
    }
    open.pop()
}

fn skip_line(chars: &mut impl Iterator<Item = (usize, char)>) {
    for (_, c) in chars {
        if c == '\n' {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_from_line_and_column() {
        let text = "ab\ncdé\nf";
        assert_eq!(offset_of(text, 1, 1), 0);
        assert_eq!(offset_of(text, 2, 3), 5);
        assert_eq!(offset_of(text, 3, 1), 8);
        assert_eq!(offset_of(text, 3, 2), text.len());
        assert_eq!(offset_of(text, 9, 1), text.len());
    }

    #[test]
    fn finds_the_unclosed_bracket() {
        assert_eq!(unclosed_bracket("a {\n  b = \"}\" # }\n"), Some(2));
        assert_eq!(
            unclosed_bracket("a {\n  b = [1, 2]\n}\nc {\n /* } */ d = 1\n"),
            Some(21)
        );
        assert_eq!(unclosed_bracket("a {\n}\n"), None);
    }

    #[test]
    fn recognises_a_second_attribute_on_a_one_line_block() {
        let text = "guest \"x\" { host = \"a\"  mode = \"live\" }\n";
        assert!(second_attribute_on_line(text, 24));
        assert!(!second_attribute_on_line("x = 1 2\n", 6));
        assert!(!second_attribute_on_line("guest \"x\" { \"a\" }\n", 12));
    }

    #[test]
    fn rewrites_a_two_attribute_one_line_block() {
        let text = "guest \"x\" { host = \"a\"  mode = \"live\" }\n";
        assert_eq!(
            one_attribute_per_line(text, 24),
            "put each attribute on its own line:\nguest \"x\" {\n  host = \"a\"\n  mode = \"live\"\n}"
        );
        let three = "guest \"x\" { host = \"a\"  mode = \"live\" x = 1 }\n";
        assert!(
            one_attribute_per_line(three, 24)
                .starts_with("put each attribute on its own line, and")
        );
    }
}
