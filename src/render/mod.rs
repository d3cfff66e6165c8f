//! Showing a plan: terminal text (`berth plan`), JSON (`--json`, also the saved plan file's
//! form), a pull-request comment in markdown, and the step graph in Graphviz DOT.
//!
//! Renderers only read a [`crate::plan::Plan`]; they never reach apply or state.

pub mod dot;
mod format;
pub mod json;
pub mod markdown;
mod style;
mod table;
pub mod text;

pub use dot::plan_dot;
pub(crate) use format::clean;
pub use format::summary_line;
pub use json::plan_json;
pub use markdown::{COMMENT_LIMIT, plan_markdown, plan_markdown_within};
pub use style::{color_enabled_for_stderr, color_enabled_for_stdout};
pub use text::{TextOptions, plan_errors_text, plan_text};

#[cfg(test)]
mod tests {
    /// Layering: render reads plans and what is upstream of them, never apply or state.
    #[test]
    fn render_does_not_reach_apply_or_state() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/render");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let source = std::fs::read_to_string(&path).unwrap();
            // Spelled in pieces so this very file does not match.
            for module in ["apply", "state"] {
                for root in ["crate", "super", "berth"] {
                    let forbidden = format!("{root}::{module}");
                    assert!(
                        !source.contains(&forbidden),
                        "{} uses {forbidden}",
                        path.display()
                    );
                }
            }
            checked += 1;
        }
        assert!(
            checked >= 7,
            "only {checked} render files found in {}",
            dir.display()
        );
    }
}
