//! Byte offsets to 1-based line and column, for messages that point into es.xml.

use serde::{Deserialize, Serialize};

/// A 1-based line and column (column counted in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` in `text` (clamped to the text). Scans from the start, so
    /// it is meant for the one error being reported, not for every element.
    pub fn of(text: &str, offset: usize) -> Location {
        let offset = floor_char_boundary(text, offset);
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location {
            line: count_newlines(before) + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// Gives line numbers for increasing offsets in one forward pass: parsing 100,000 machines must
/// not rescan the file for each of them.
#[derive(Debug, Default)]
pub struct LineCounter {
    offset: usize,
    line: usize,
}

impl LineCounter {
    pub fn new() -> LineCounter {
        LineCounter { offset: 0, line: 1 }
    }

    /// A counter that calls `offset` line 1: for the second half of a split scan, whose lines
    /// are shifted once the first half knows the line of the split.
    pub fn starting_at(offset: usize) -> LineCounter {
        LineCounter { offset, line: 1 }
    }

    /// The 1-based line of `offset`. Offsets must not decrease between calls (a smaller offset
    /// is answered by a full rescan, correct but slow).
    pub fn line_at(&mut self, text: &str, offset: usize) -> usize {
        let offset = floor_char_boundary(text, offset);
        if offset < self.offset {
            return Location::of(text, offset).line;
        }
        self.line += count_newlines(&text[self.offset..offset]);
        self.offset = offset;
        self.line
    }
}

/// Counts `\n` bytes with `memchr` (through `str::matches`), which stays fast even in
/// unoptimized test builds where a byte loop would dominate parsing time.
fn count_newlines(text: &str) -> usize {
    text.matches('\n').count()
}

fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_offsets() {
        let text = "ab\ncdé\n\nx";
        assert_eq!(Location::of(text, 0), Location { line: 1, column: 1 });
        assert_eq!(Location::of(text, 3), Location { line: 2, column: 1 });
        assert_eq!(Location::of(text, 7), Location { line: 2, column: 4 }); // after the 2-byte é
        assert_eq!(Location::of(text, 9), Location { line: 4, column: 1 });
        assert_eq!(Location::of(text, 999), Location { line: 4, column: 2 });
    }

    #[test]
    fn counter_agrees_with_full_scan() {
        let text = "a\nb\n\nccc\nd";
        let mut counter = LineCounter::new();
        for offset in [0, 1, 2, 4, 5, 6, 9, 10] {
            assert_eq!(
                counter.line_at(text, offset),
                Location::of(text, offset).line,
                "{offset}"
            );
        }
        assert_eq!(counter.line_at(text, 0), 1);
    }
}
