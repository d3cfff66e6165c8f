//! The es.xml change a plan carries, as a plain unified diff: reviewable in a terminal, a pull
//! request or `patch`, and independent of how it is rendered.

use std::ops::Range;

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

/// [`unified_diff`] of `before` against `before` with `edits` applied, computed from the edits
/// alone: linear in the text, where a line diff of a 250 MB es.xml costs seconds and the memory
/// of both texts' line tables. `edits` must be sorted by position and not overlap (an insertion
/// may share its position with the start of a deletion; it goes first). Each change is widened
/// to whole lines and lines it leaves unchanged are trimmed off, so the hunks are the ones a
/// line diff finds for such sparse edits.
pub fn unified_diff_of_edits<'a>(
    path: &str,
    before: &str,
    edits: impl IntoIterator<Item = (Range<usize>, &'a str)>,
) -> String {
    let blocks = line_blocks(before, edits);
    let mut out = String::new();
    let mut lines = LineCursor::default();
    let mut delta: isize = 0;
    let mut i = 0;
    while i < blocks.len() {
        // Blocks closer than twice the context share one hunk.
        let mut j = i;
        while j + 1 < blocks.len()
            && lines_between(before, blocks[j].old.end, blocks[j + 1].old.start)
                <= 2 * CONTEXT_LINES
        {
            j += 1;
        }
        let first_line = lines.line_at(before, blocks[i].old.start);
        let start = back_lines(before, blocks[i].old.start, CONTEXT_LINES);
        let end = forward_lines(before, blocks[j].old.end, CONTEXT_LINES);
        let start_line = first_line - count_lines(&before[start..blocks[i].old.start]);
        let mut body = String::new();
        let (mut old_count, mut new_count) = (0, 0);
        let mut cursor = start;
        for block in &blocks[i..=j] {
            old_count += push_lines(&mut body, ' ', &before[cursor..block.old.start]);
            new_count += count_lines(&before[cursor..block.old.start]);
            old_count += push_lines(&mut body, '-', &before[block.old.clone()]);
            new_count += push_lines(&mut body, '+', &block.new);
            cursor = block.old.end;
        }
        let tail = push_lines(&mut body, ' ', &before[cursor..end]);
        old_count += tail;
        new_count += tail;
        if out.is_empty() {
            out.push_str(&format!("--- {path}\n+++ {path}\n"));
        }
        let new_start = start_line as isize + delta;
        out.push_str(&format!(
            "@@ -{} +{} @@\n",
            HunkRange(start_line, old_count),
            HunkRange(new_start.max(0) as usize, new_count)
        ));
        out.push_str(&body);
        delta += new_count as isize - old_count as isize;
        i = j + 1;
    }
    out
}

/// A change in line terms: whole lines `old` of the old text become the lines of `new`.
struct Block {
    old: Range<usize>,
    new: String,
}

/// A replacement: this byte range of the old text becomes this text.
type Edit<'a> = (Range<usize>, &'a str);

/// The edits as whole-line blocks, touching ones merged, unchanged lines at either end trimmed.
fn line_blocks<'a>(text: &str, edits: impl IntoIterator<Item = Edit<'a>>) -> Vec<Block> {
    // The old lines each group covers, and its edits.
    let mut groups: Vec<(Range<usize>, Vec<Edit<'a>>)> = Vec::new();
    for (range, replacement) in edits {
        let start = line_start(text, range.start);
        let mut end = if is_line_start(text, range.end) {
            range.end
        } else {
            line_end(text, range.end)
        };
        // The new text of `start..end` must end a line too; deleting a newline (or inserting
        // mid-line) joins lines, and then the next line belongs to the change.
        let prefix_empty = start == range.start;
        let ends_a_line = end == text.len()
            || range.end < end
            || replacement.ends_with('\n')
            || (replacement.is_empty() && prefix_empty);
        if !ends_a_line {
            end = line_end(text, end);
        }
        match groups.last_mut() {
            Some((group, members)) if start <= group.end => {
                group.end = group.end.max(end);
                members.push((range, replacement));
            }
            _ => groups.push((start..end, vec![(range, replacement)])),
        }
    }
    groups
        .into_iter()
        .filter_map(|(old, members)| {
            let mut new = String::new();
            let mut cursor = old.start;
            for (range, replacement) in members {
                new.push_str(&text[cursor..range.start]);
                new.push_str(replacement);
                cursor = range.end;
            }
            new.push_str(&text[cursor..old.end]);
            trim_unchanged(text, old, &new)
        })
        .collect()
}

/// Drops the lines a block leaves as they were at its start and end; `None` when nothing is left.
fn trim_unchanged(text: &str, old: Range<usize>, new: &str) -> Option<Block> {
    let old_lines: Vec<&str> = text[old.clone()].split_inclusive('\n').collect();
    let new_lines: Vec<&str> = new.split_inclusive('\n').collect();
    let head = old_lines
        .iter()
        .zip(&new_lines)
        .take_while(|(a, b)| a == b)
        .count();
    let tail = old_lines[head..]
        .iter()
        .rev()
        .zip(new_lines[head..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let (old_kept, new_kept) = (
        &old_lines[head..old_lines.len() - tail],
        &new_lines[head..new_lines.len() - tail],
    );
    if old_kept.is_empty() && new_kept.is_empty() {
        return None;
    }
    let skipped: usize = old_lines[..head].iter().map(|l| l.len()).sum();
    let start = old.start + skipped;
    let end = start + old_kept.iter().map(|l| l.len()).sum::<usize>();
    Some(Block {
        old: start..end,
        new: new_kept.concat(),
    })
}

/// `@@` range: 1-based start and count; an empty range names the line before it, one line
/// omits the count (as `diff -u` and similar write it).
struct HunkRange(usize, usize);

impl std::fmt::Display for HunkRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let HunkRange(start, count) = *self;
        match count {
            1 => write!(f, "{}", start + 1),
            0 => write!(f, "{start},0"),
            _ => write!(f, "{},{count}", start + 1),
        }
    }
}

/// Gives 0-based line numbers for increasing offsets in one forward pass.
#[derive(Default)]
struct LineCursor {
    offset: usize,
    line: usize,
}

impl LineCursor {
    fn line_at(&mut self, text: &str, offset: usize) -> usize {
        self.line += count_newlines(&text.as_bytes()[self.offset..offset]);
        self.offset = offset;
        self.line
    }
}

/// Appends every line of `lines` with `tag` in front; returns how many.
fn push_lines(out: &mut String, tag: char, lines: &str) -> usize {
    let mut count = 0;
    for line in lines.split_inclusive('\n') {
        out.push(tag);
        out.push_str(line);
        if !line.ends_with('\n') {
            out.push_str("\n\\ No newline at end of file\n");
        }
        count += 1;
    }
    count
}

/// Newlines in `bytes`: es.xml runs to hundreds of MiB, and memchr's count is vectorised.
fn count_newlines(bytes: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', bytes).count()
}

/// Lines in `text` (a last line without newline counts).
fn count_lines(text: &str) -> usize {
    count_newlines(text.as_bytes()) + usize::from(!text.is_empty() && !text.ends_with('\n'))
}

/// Whole lines between two line starts, counted no further than the hunk gap needs.
fn lines_between(text: &str, from: usize, to: usize) -> usize {
    text[from..to]
        .split_inclusive('\n')
        .take(2 * CONTEXT_LINES + 1)
        .count()
}

fn is_line_start(text: &str, pos: usize) -> bool {
    pos == 0 || text.as_bytes()[pos - 1] == b'\n'
}

fn line_start(text: &str, pos: usize) -> usize {
    text[..pos].rfind('\n').map_or(0, |i| i + 1)
}

/// Just after the `\n` ending the line that holds `pos` (or the end of the text).
fn line_end(text: &str, pos: usize) -> usize {
    text[pos..].find('\n').map_or(text.len(), |i| pos + i + 1)
}

/// The start of the line `n` lines above the line starting at `pos` (or the text's start).
fn back_lines(text: &str, mut pos: usize, n: usize) -> usize {
    for _ in 0..n {
        if pos == 0 {
            break;
        }
        pos = line_start(text, pos - 1);
    }
    pos
}

/// The end of the `n` lines from the line start `pos` (or the text's end).
fn forward_lines(text: &str, mut pos: usize, n: usize) -> usize {
    for _ in 0..n {
        if pos == text.len() {
            break;
        }
        pos = line_end(text, pos);
    }
    pos
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

    /// Applies a unified diff made by this module to `before` (hunks in order, exact context).
    fn patch(before: &str, diff: &str) -> String {
        let old: Vec<&str> = before.split_inclusive('\n').collect();
        let mut out = String::new();
        let mut next = 0;
        let mut lines = diff.lines().skip(2).peekable();
        while let Some(header) = lines.next() {
            let old_range = header.trim_start_matches("@@ -").split(' ').next().unwrap();
            let mut parts = old_range.split(',');
            let start: usize = parts.next().unwrap().parse().unwrap();
            let count: usize = parts.next().map_or(1, |c| c.parse().unwrap());
            let first = if count == 0 { start } else { start - 1 };
            out.extend(old[next..first].iter().copied());
            next = first;
            while let Some(line) = lines.next_if(|l| !l.starts_with("@@")) {
                let no_newline = lines.next_if(|l| l.starts_with('\\')).is_some();
                let body = format!("{}{}", &line[1..], if no_newline { "" } else { "\n" });
                match &line[..1] {
                    " " => {
                        assert_eq!(old[next], body, "context differs");
                        out.push_str(&body);
                        next += 1;
                    }
                    "-" => {
                        assert_eq!(old[next], body, "removed line differs");
                        next += 1;
                    }
                    "+" => out.push_str(&body),
                    other => panic!("unexpected line tag {other:?}"),
                }
            }
        }
        out.extend(old[next..].iter().copied());
        out
    }

    fn apply(text: &str, edits: &[(Range<usize>, String)]) -> String {
        let mut out = String::new();
        let mut cursor = 0;
        for (range, replacement) in edits {
            out.push_str(&text[cursor..range.start]);
            out.push_str(replacement);
            cursor = range.end;
        }
        out + &text[cursor..]
    }

    fn of_edits(before: &str, edits: &[(Range<usize>, String)]) -> String {
        unified_diff_of_edits(
            "f",
            before,
            edits.iter().map(|(r, t)| (r.clone(), t.as_str())),
        )
    }

    #[test]
    fn edits_diff_matches_the_line_diff_for_line_moves() {
        let before: String = (1..=40).map(|i| format!("line {i}\n")).collect();
        let at = |line: usize| {
            if line == 1 {
                0
            } else {
                before
                    .match_indices('\n')
                    .nth(line - 2)
                    .map_or(before.len(), |(i, _)| i + 1)
            }
        };
        let whole = |line: usize| at(line)..at(line + 1);
        let cases: Vec<Vec<(Range<usize>, String)>> = vec![
            vec![(whole(5), String::new())],
            vec![(at(1)..at(1), "new first\n".into())],
            vec![(whole(40), String::new())],
            vec![
                (at(40)..at(40), "above last\n".into()),
                (whole(40), String::new()),
            ],
            vec![(whole(3), String::new()), (at(9)..at(9), "line 3\n".into())],
            vec![
                (whole(3), String::new()),
                (at(20)..at(20), "line 3\n".into()),
                (whole(30), String::new()),
            ],
            vec![
                (at(12)..at(12), "x\n".into()),
                (at(12)..at(12), "y\n".into()),
                (whole(12), String::new()),
            ],
        ];
        for edits in cases {
            let after = apply(&before, &edits);
            assert_eq!(
                of_edits(&before, &edits),
                unified_diff("f", &before, &after),
                "{edits:?}"
            );
        }
    }

    #[test]
    fn mid_line_edits_and_a_missing_final_newline_round_trip() {
        let before = "<a>\n  <b/><c/>\n  <d/>\n</a>";
        let edits = vec![
            (8..12, String::new()),
            (20..20, "<c/>".to_string()),
            (24..24, "<e/>".to_string()),
        ];
        let after = apply(before, &edits);
        let diff = of_edits(before, &edits);
        assert_eq!(patch(before, &diff), after, "{diff}");
        assert!(diff.contains("\\ No newline at end of file"), "{diff}");
        assert_eq!(of_edits(before, &[]), "");
        assert_eq!(
            of_edits(before, &[(3..3, String::new())]),
            "",
            "an empty edit changes nothing"
        );
    }

    proptest::proptest! {
        /// Any sorted, non-overlapping edits: the diff patches `before` into the edited text.
        #[test]
        fn edits_diff_patches_before_into_after(
            lines in proptest::collection::vec("[a-c]{0,3}", 0..30),
            final_newline in proptest::bool::ANY,
            raw in proptest::collection::vec((0usize..200, 0usize..6, "[x-z\n]{0,4}"), 0..8),
        ) {
            let mut before = lines.join("\n");
            if final_newline && !before.is_empty() {
                before.push('\n');
            }
            let mut edits: Vec<(Range<usize>, String)> = Vec::new();
            let mut cursor = 0;
            let mut starts: Vec<(usize, usize, String)> = raw;
            starts.sort();
            for (start, len, text) in starts {
                let start = start.min(before.len()).max(cursor);
                let end = (start + len).min(before.len());
                edits.push((start..end, text));
                cursor = end;
            }
            let after = apply(&before, &edits);
            let diff = of_edits(&before, &edits);
            proptest::prop_assert_eq!(patch(&before, &diff), after.clone(), "{}", diff);
            proptest::prop_assert_eq!(diff.is_empty(), before == after);
        }
    }
}
