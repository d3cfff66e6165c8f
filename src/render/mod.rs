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
pub use format::summary_line;
pub use json::plan_json;
pub use markdown::{COMMENT_LIMIT, plan_markdown, plan_markdown_within};
pub use style::color_enabled_for_stdout;
pub use text::{TextOptions, plan_text};
