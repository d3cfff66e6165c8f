//! Aligned text tables for the terminal plan. Columns are sized on the plain text (so colour
//! never shifts them) and the last column wraps at word boundaries to fit the width.

use console::measure_text_width;

use crate::render::style::{Painter, Role};

/// Space between columns.
const GAP: &str = "  ";
/// Below this many columns left for the last cell, wrapping would make it unreadable; the
/// terminal wraps instead.
const MIN_WRAP_WIDTH: usize = 24;
/// Columns of a row's mark.
const MARK_WIDTH: usize = 1;

/// One cell: plain text and, when it should stand out, a role.
pub(crate) struct Cell {
    text: String,
    role: Option<Role>,
}

impl Cell {
    pub fn plain(text: impl Into<String>) -> Self {
        Cell {
            text: text.into(),
            role: None,
        }
    }
    pub fn styled(text: impl Into<String>, role: Option<Role>) -> Self {
        Cell {
            text: text.into(),
            role,
        }
    }
}

/// Rows start with a one-character mark (`~`, `!`, or blank) and a space, as in Terraform.
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<(Cell, Vec<Cell>)>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, mark: Cell, cells: Vec<Cell>) {
        self.rows.push((mark, cells));
    }

    /// The table as lines (each ending in `\n`), indented by `indent` spaces; `width` 0 means
    /// no wrapping.
    pub fn render(&self, indent: usize, width: usize, painter: Painter) -> String {
        // The mark and its space.
        let indent = indent + MARK_WIDTH + 1;
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| measure_text_width(h)).collect();
        for (_, row) in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(measure_text_width(&cell.text));
            }
        }
        // Where the last column starts, and how wide it may be.
        let last_start = indent
            + widths[..columns - 1]
                .iter()
                .map(|w| w + GAP.len())
                .sum::<usize>();
        let last_width = width.saturating_sub(last_start);
        let wrap_at = (width > 0 && last_width >= MIN_WRAP_WIDTH).then_some(last_width);

        let mut out = String::new();
        let header: Vec<Cell> = self
            .header
            .iter()
            .map(|h| Cell::styled(h.clone(), Some(Role::Heading)))
            .collect();
        let header = (Cell::plain(""), header);
        for (mark, row) in std::iter::once(&header).chain(&self.rows) {
            let mut line = " ".repeat(indent - MARK_WIDTH - 1);
            line.push_str(&paint(painter, mark.role, &mark.text));
            line.push_str(
                &" ".repeat(MARK_WIDTH + 1 - measure_text_width(&mark.text).min(MARK_WIDTH)),
            );
            for (i, cell) in row.iter().enumerate().take(columns) {
                if i + 1 == columns {
                    let mut pieces = wrap(&cell.text, wrap_at).into_iter();
                    line.push_str(&paint(
                        painter,
                        cell.role,
                        &pieces.next().unwrap_or_default(),
                    ));
                    for piece in pieces {
                        line.push('\n');
                        line.push_str(&" ".repeat(last_start));
                        line.push_str(&paint(painter, cell.role, &piece));
                    }
                } else {
                    line.push_str(&paint(painter, cell.role, &cell.text));
                    line.push_str(&" ".repeat(widths[i] - measure_text_width(&cell.text)));
                    line.push_str(GAP);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

fn paint(painter: Painter, role: Option<Role>, text: &str) -> String {
    match role {
        Some(role) => painter.paint(role, text),
        None => text.to_string(),
    }
}

/// Splits `text` into lines of at most `width` columns at spaces (a longer word stays whole).
pub(crate) fn wrap(text: &str, width: Option<usize>) -> Vec<String> {
    let Some(width) = width else {
        return vec![text.to_string()];
    };
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        if !current.is_empty()
            && measure_text_width(&current) + 1 + measure_text_width(word) > width
        {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    lines.push(current);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell() {
        let mut table = Table::new(&["GUEST", "MODE"]);
        table.row(
            Cell::plain("~"),
            vec![Cell::plain("exa01vm01"), Cell::plain("live")],
        );
        table.row(
            Cell::plain(""),
            vec![Cell::plain("vm2"), Cell::plain("offline")],
        );
        let text = table.render(2, 0, Painter { color: false });
        assert_eq!(
            text,
            "    GUEST      MODE\n  ~ exa01vm01  live\n    vm2        offline\n"
        );
    }

    #[test]
    fn last_column_wraps_under_itself() {
        let mut table = Table::new(&["G", "REASON"]);
        let reason = "host exa01adm01 is drained and exa01adm02 has the most free memory left";
        table.row(
            Cell::plain(""),
            vec![Cell::plain("vm1"), Cell::plain(reason)],
        );
        let text = table.render(0, 40, Painter { color: false });
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() > 2, "{text}");
        for line in &lines[1..] {
            assert!(measure_text_width(line) <= 40, "{line:?} is wider than 40");
        }
        for continuation in &lines[2..] {
            assert!(
                continuation.starts_with("       ") && !continuation[7..].starts_with(' '),
                "{continuation:?}"
            );
        }
        let rejoined: Vec<&str> = lines[1..]
            .iter()
            .map(|l| l.trim_start().trim_start_matches("vm1").trim())
            .collect();
        assert_eq!(rejoined.join(" "), reason);
    }

    #[test]
    fn colour_does_not_shift_columns() {
        let mut table = Table::new(&["A", "B"]);
        table.row(
            Cell::styled("!", Some(Role::Error)),
            vec![Cell::styled("xx", Some(Role::Error)), Cell::plain("y")],
        );
        let plain = table.render(0, 0, Painter { color: false });
        let coloured = table.render(0, 0, Painter { color: true });
        assert_ne!(plain, coloured);
        assert_eq!(console::strip_ansi_codes(&coloured), plain);
    }
}
