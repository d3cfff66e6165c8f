//! `berth fmt`: the configuration files in one canonical layout, comments kept. Every line is
//! indented two spaces per nesting level, trailing whitespace goes, and the `=` of consecutive
//! one-line attributes in a block line up (as `terraform fmt` does). Heredocs are left as they
//! are. The result must parse to the same HCL as the input, or the file is left alone.

/// `text` formatted; `Err` when the result would not mean the same (a bug, or HCL this simple
/// formatter does not understand), so that the caller leaves the file alone.
pub fn format_hcl(text: &str) -> Result<String, String> {
    let before = hcl::parse(text).map_err(|e| format!("not valid HCL: {e}"))?;
    let formatted = layout(text);
    let after = hcl::parse(&formatted).map_err(|e| format!("formatting broke the file: {e}"))?;
    if before != after {
        return Err("formatting would change what the file says; left as it is".into());
    }
    Ok(formatted)
}

/// One line after indentation: its depth and its text without leading or trailing blanks.
struct Line {
    depth: usize,
    text: String,
    /// Copied as it is (inside a heredoc).
    verbatim: bool,
}

fn layout(text: &str) -> String {
    let mut lines = Vec::new();
    let mut depth: usize = 0;
    let mut heredoc: Option<String> = None;
    for raw in text.lines() {
        if let Some(marker) = &heredoc {
            if raw.trim() == marker {
                heredoc = None;
            }
            lines.push(Line {
                depth,
                text: raw.to_string(),
                verbatim: true,
            });
            continue;
        }
        let trimmed = raw.trim();
        let (opens, closes_first, net) = brackets(trimmed);
        let line_depth = depth.saturating_sub(closes_first);
        lines.push(Line {
            depth: line_depth,
            text: trimmed.to_string(),
            verbatim: false,
        });
        depth = (depth as isize + net).max(0) as usize;
        let _ = opens;
        heredoc = heredoc_marker(trimmed);
    }
    align(&mut lines);
    let mut out = String::with_capacity(text.len());
    for line in &lines {
        if line.verbatim {
            out.push_str(&line.text);
        } else if !line.text.is_empty() {
            out.push_str(&"  ".repeat(line.depth));
            out.push_str(&line.text);
        }
        out.push('\n');
    }
    // One newline at the end, no trailing blank lines.
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// (brackets opened, brackets the line closes before opening any, net change), outside
/// strings and comments.
fn brackets(line: &str) -> (usize, usize, isize) {
    let (mut opens, mut closes_first, mut net) = (0usize, 0usize, 0isize);
    let mut in_string = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '#' => break,
            '/' if chars.peek() == Some(&'/') => break,
            '{' | '[' | '(' => {
                opens += 1;
                net += 1;
            }
            '}' | ']' | ')' => {
                if opens == 0 {
                    closes_first += 1;
                }
                net -= 1;
            }
            _ => {}
        }
    }
    (opens, closes_first, net)
}

/// The end marker of a heredoc the line starts (`<<EOF`, `<<-EOF`).
fn heredoc_marker(line: &str) -> Option<String> {
    let start = line.find("<<")?;
    let rest = line[start + 2..].trim_start_matches('-');
    let marker: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!marker.is_empty()).then_some(marker)
}

/// Lines up the `=` of runs of consecutive one-line attributes at one depth.
fn align(lines: &mut [Line]) {
    let key_of = |line: &Line| -> Option<usize> {
        if line.verbatim {
            return None;
        }
        let eq = line.text.find('=')?;
        let key = line.text[..eq].trim_end();
        let simple = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let (_, _, net) = brackets(&line.text);
        (simple && net == 0 && !line.text[eq..].starts_with("==")).then_some(key.len())
    };
    let mut i = 0;
    while i < lines.len() {
        let Some(_) = key_of(&lines[i]) else {
            i += 1;
            continue;
        };
        let depth = lines[i].depth;
        let mut j = i;
        let mut width = 0;
        while j < lines.len() && lines[j].depth == depth {
            match key_of(&lines[j]) {
                Some(w) => width = width.max(w),
                None => break,
            }
            j += 1;
        }
        for line in &mut lines[i..j] {
            let eq = line.text.find('=').unwrap_or(0);
            let key = line.text[..eq].trim_end().to_string();
            let value = line.text[eq + 1..].trim_start().to_string();
            line.text = format!("{key:<width$} = {value}");
        }
        i = j.max(i + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indents_aligns_and_keeps_comments() {
        let text = "# the rack\ninventory {\nes_xml = \"es.xml\"   \n    libvirt_uri = \"test:nodes/{host}.xml\" # per host\n}\n\n\nhost \"a\" {\n drain = true\n  sriov_vfs = [\n\"0000:3b:02.0\",\n  ]\n}\n\n";
        let formatted = format_hcl(text).unwrap();
        assert_eq!(
            formatted,
            "# the rack\ninventory {\n  es_xml      = \"es.xml\"\n  libvirt_uri = \"test:nodes/{host}.xml\" # per host\n}\n\n\nhost \"a\" {\n  drain = true\n  sriov_vfs = [\n    \"0000:3b:02.0\",\n  ]\n}\n"
        );
        // Formatting is stable.
        assert_eq!(format_hcl(&formatted).unwrap(), formatted);
    }

    #[test]
    fn braces_and_hashes_in_strings_do_not_count() {
        let text = "guest \"a\" {\nhost = \"{x} # not a comment\"\n}\n";
        assert_eq!(
            format_hcl(text).unwrap(),
            "guest \"a\" {\n  host = \"{x} # not a comment\"\n}\n"
        );
    }

    #[test]
    fn invalid_hcl_is_left_alone() {
        assert!(format_hcl("host \"a\" {\n").is_err());
    }
}
