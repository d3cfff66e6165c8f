//! The es.xml change a plan carries, as a plain unified diff: reviewable in a terminal, a pull
//! request or `patch`, and independent of how it is rendered.

use similar::TextDiff;

/// Lines of unchanged context around each change, as `diff -u` and git use.
const CONTEXT_LINES: usize = 3;

/// Unified diff of `before` against `after`, with `--- path` / `+++ path` headers and 3 lines of
/// context. Returns an empty string when the texts are equal, so "no es.xml change" is simply
/// an empty diff.
pub fn unified_diff(path: &str, before: &str, after: &str) -> String {
    if before == after {
        return String::new();
    }
    TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(CONTEXT_LINES)
        .header(path, path)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_give_an_empty_diff() {
        assert_eq!(unified_diff("/etc/es.xml", "<a/>\n", "<a/>\n"), "");
    }

    #[test]
    fn diff_names_the_path_and_keeps_three_lines_of_context() {
        let before: String = (1..=10).map(|i| format!("line {i}\n")).collect();
        let after = before.replace("line 5\n", "line five\n");
        let diff = unified_diff("/etc/oeda/es.xml", &before, &after);
        let lines: Vec<&str> = diff.lines().collect();
        assert_eq!(lines[0], "--- /etc/oeda/es.xml");
        assert_eq!(lines[1], "+++ /etc/oeda/es.xml");
        assert_eq!(lines[2], "@@ -2,7 +2,7 @@");
        assert!(lines.contains(&"-line 5"));
        assert!(lines.contains(&"+line five"));
        // Three lines of context on each side of the one changed line.
        assert_eq!(lines.iter().filter(|l| l.starts_with(' ')).count(), 6);
    }
}
