//! Colour for the terminal plan: whether to use it, and what each role looks like.
//!
//! Styles are forced on when colour is wanted (console would otherwise drop them whenever it
//! thinks stdout is not a terminal), and never applied at all when it is not, so plain output
//! holds no escape codes.

use std::ffi::OsStr;
use std::io::IsTerminal;

use console::Style;

/// What a piece of text means, which decides its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Something that appears (a guest on its target, a `+` diff line).
    Add,
    /// Something that goes away (a `-` diff line).
    Remove,
    /// Something that changes (a move, a drifted value).
    Change,
    /// An error or capacity overrun.
    Error,
    /// Section titles and table headers.
    Heading,
    /// Secondary detail (skipped steps, diff hunk headers).
    Dim,
}

/// Applies a [`Role`]'s style when colour is on; returns the text unchanged when it is off.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Painter {
    pub color: bool,
}

impl Painter {
    pub fn paint(&self, role: Role, text: &str) -> String {
        if !self.color {
            return text.to_string();
        }
        let style = match role {
            Role::Add => Style::new().green(),
            Role::Remove => Style::new().red(),
            Role::Change => Style::new().yellow(),
            Role::Error => Style::new().red().bold(),
            Role::Heading => Style::new().bold(),
            Role::Dim => Style::new().cyan(),
        };
        style.force_styling(true).apply_to(text).to_string()
    }
}

/// Whether the plan printed on stdout should be coloured: never when `NO_COLOR` is set to a
/// non-empty value, always when `CLICOLOR_FORCE` is set (and not `0`), otherwise when stdout
/// is a terminal.
pub fn color_enabled_for_stdout() -> bool {
    color_wanted(
        std::env::var_os("NO_COLOR").as_deref(),
        std::env::var_os("CLICOLOR_FORCE").as_deref(),
        std::io::stdout().is_terminal(),
    )
}

/// Whether diagnostics on stderr should be coloured (same rules, for stderr).
pub fn color_enabled_for_stderr() -> bool {
    color_wanted(
        std::env::var_os("NO_COLOR").as_deref(),
        std::env::var_os("CLICOLOR_FORCE").as_deref(),
        std::io::stderr().is_terminal(),
    )
}

/// The decision of [`color_enabled_for_stdout`], from its inputs.
fn color_wanted(
    no_color: Option<&OsStr>,
    clicolor_force: Option<&OsStr>,
    stdout_is_tty: bool,
) -> bool {
    if no_color.is_some_and(|v| !v.is_empty()) {
        return false;
    }
    if clicolor_force.is_some_and(|v| !v.is_empty() && v != "0") {
        return true;
    }
    stdout_is_tty
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<&OsStr> {
        Some(OsStr::new(s))
    }

    #[test]
    fn no_color_wins_over_everything() {
        assert!(!color_wanted(os("1"), os("1"), true));
        assert!(!color_wanted(os("anything"), None, true));
    }

    #[test]
    fn empty_no_color_is_ignored() {
        assert!(color_wanted(os(""), None, true));
    }

    #[test]
    fn clicolor_force_colours_a_pipe() {
        assert!(color_wanted(None, os("1"), false));
        assert!(!color_wanted(None, os("0"), false));
        assert!(!color_wanted(None, os(""), false));
    }

    #[test]
    fn terminal_decides_otherwise() {
        assert!(color_wanted(None, None, true));
        assert!(!color_wanted(None, None, false));
    }

    #[test]
    fn painter_adds_escapes_only_with_colour() {
        assert_eq!(Painter { color: false }.paint(Role::Add, "+ x"), "+ x");
        let painted = Painter { color: true }.paint(Role::Add, "+ x");
        assert!(
            painted.contains("\u{1b}[32m") && painted.contains("+ x"),
            "{painted:?}"
        );
    }
}
