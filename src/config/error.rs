//! The config layer's error type: miette diagnostics that point at file:line:col.
//!
//! Every problem with a place becomes a [`ConfigError::At`] carrying its file's text, so it
//! renders as a rustc-like snippet; a whole load's problems are bundled in [`ConfigError::Many`].

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan,
};

use super::model::{SourceFile, Span};

/// A place in the configuration as the user reads it: 1-based line and column (in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Everything that can go wrong while reading the configuration, or that a later stage finds
/// wrong with a configured value (see [`crate::config::Config::error_at`]).
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum ConfigError {
    /// A file or the directory could not be read.
    #[error("cannot read {}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The directory has no `*.hcl` file.
    #[error("no .hcl files in {}", dir.display())]
    #[diagnostic(help(
        "berth reads every *.hcl file of the configuration directory; create one, for example main.hcl with `inventory {{ es_xml = \"es.xml\" }}`"
    ))]
    NoFiles { dir: PathBuf },
    /// One problem at one place.
    #[error(transparent)]
    #[diagnostic(transparent)]
    At(Box<LocatedError>),
    /// A problem the configuration causes that has no single place in it (for example an
    /// intent that no host can satisfy); the message names the guests and hosts instead.
    #[error("{message}")]
    Unlocated {
        message: String,
        #[help]
        help: Option<String>,
    },
    /// Several independent problems, reported together.
    #[error("{} errors in the configuration", errors.len())]
    Many {
        #[related]
        errors: Vec<ConfigError>,
    },
}

/// One problem with its place, the file's text for the snippet, and optional help.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{message}")]
pub struct LocatedError {
    message: String,
    location: Location,
    #[source_code]
    source_code: NamedSource<Arc<str>>,
    #[label(collection)]
    labels: Vec<LabeledSpan>,
    #[help]
    help: Option<String>,
    /// Places in other files that belong to the story ("first defined here").
    #[related]
    notes: Vec<ConfigNote>,
}

/// A secondary place in another file than the error itself.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{message}")]
#[diagnostic(severity(Advice))]
pub struct ConfigNote {
    message: String,
    #[source_code]
    source_code: NamedSource<Arc<str>>,
    #[label(collection)]
    labels: Vec<LabeledSpan>,
}

impl ConfigError {
    /// Bundles several errors into one; a single error is returned as it is and nested bundles
    /// are flattened.
    pub fn many(errors: Vec<ConfigError>) -> ConfigError {
        let mut flat: Vec<ConfigError> = Vec::with_capacity(errors.len());
        for error in errors {
            match error {
                ConfigError::Many { errors } => flat.extend(errors),
                other => flat.push(other),
            }
        }
        if flat.len() == 1
            && let Some(only) = flat.pop()
        {
            return only;
        }
        ConfigError::Many { errors: flat }
    }

    /// `Ok` when there is nothing to report, else all of `errors` bundled with [`Self::many`].
    pub fn check(errors: Vec<ConfigError>) -> Result<(), ConfigError> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::many(errors))
        }
    }

    /// The individual problems (one for anything but [`ConfigError::Many`]).
    pub fn errors(&self) -> Vec<&ConfigError> {
        match self {
            ConfigError::Many { errors } => errors.iter().flat_map(ConfigError::errors).collect(),
            other => vec![other],
        }
    }

    /// Where the problem is, when it has a place.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::At(located) => Some(&located.location),
            _ => None,
        }
    }

    /// The help text, when there is one.
    pub fn help_text(&self) -> Option<&str> {
        match self {
            ConfigError::At(located) => located.help.as_deref(),
            _ => None,
        }
    }

    /// One line per problem, `file:line:col: message`, for logs and non-terminal output.
    pub fn plain(&self) -> String {
        self.errors()
            .iter()
            .map(|error| match error.location() {
                Some(location) => format!("{location}: {error}"),
                None => error.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A secondary place mentioned by an error, with its own label.
pub(crate) struct Note {
    pub span: Span,
    pub label: String,
}

/// Builds a located error from spans into `files`. Notes in the error's own file become
/// secondary labels of its snippet; notes in other files become related advice snippets.
pub(crate) fn located(
    files: &[SourceFile],
    span: &Span,
    message: impl Into<String>,
    label: impl Into<String>,
    help: Option<String>,
    notes: Vec<Note>,
) -> ConfigError {
    // Messages, labels and help quote names from HCL and es.xml: shown, never sent to the
    // terminal (crate::printable).
    let primary = LabeledSpan::new_primary_with_span(
        non_empty(printable(label.into())),
        source_span(files, span),
    );
    let mut labels = vec![primary];
    let mut related = Vec::new();
    for note in notes {
        let note_span = LabeledSpan::new_with_span(
            non_empty(printable(note.label.clone())),
            source_span(files, &note.span),
        );
        if note.span.file == span.file {
            labels.push(note_span);
        } else {
            related.push(ConfigNote {
                message: printable(note.label),
                source_code: named_source(files, note.span.file),
                labels: vec![note_span],
            });
        }
    }
    ConfigError::At(Box::new(LocatedError {
        message: printable(message.into()),
        location: location_of(files, span),
        source_code: named_source(files, span.file),
        labels,
        help: help.map(printable),
        notes: related,
    }))
}

/// Line and column of the start of `span`; an unknown file index gives `<unknown>:0:0`.
pub(crate) fn location_of(files: &[SourceFile], span: &Span) -> Location {
    let Some(file) = files.get(span.file) else {
        return Location {
            file: "<unknown>".into(),
            line: 0,
            column: 0,
        };
    };
    let offset = clamp_to_char_boundary(&file.text, span.range.start);
    let before = &file.text[..offset];
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    Location {
        file: crate::printable::escape(&file.name).into_owned(),
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

fn clamp_to_char_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

fn source_span(files: &[SourceFile], span: &Span) -> SourceSpan {
    let text = files.get(span.file).map_or("", |file| file.text.as_str());
    let start = clamp_to_char_boundary(text, span.range.start);
    let end = clamp_to_char_boundary(text, span.range.end.max(start));
    SourceSpan::from(start..end)
}

fn named_source(files: &[SourceFile], index: usize) -> NamedSource<Arc<str>> {
    match files.get(index) {
        // The snippet's text keeps its byte offsets (the spans), its controls blanked.
        Some(file) => NamedSource::new(crate::printable::escape(&file.name), file.shown_text()),
        None => NamedSource::new("<unknown>", Arc::from("")),
    }
}

fn printable(text: String) -> String {
    match crate::printable::escape(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(escaped) => escaped,
    }
}

fn non_empty(label: String) -> Option<String> {
    if label.is_empty() { None } else { Some(label) }
}

/// Renders `error` like rustc: for each problem its message, a `╭─[file:line:col]` snippet with
/// labels, and help; a bundle ends with a count. Unicode box drawing; ANSI colors only when
/// `color` is true.
pub fn render(error: &ConfigError, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_links(false);
    let problems = error.errors();
    let mut reports: Vec<String> = problems
        .iter()
        .map(|problem| {
            let mut one = String::new();
            if !fits_snippet(problem) || handler.render_report(&mut one, *problem).is_err() {
                // Only a span outside its source can make rendering fail, and only a label
                // far right on a huge line needs a column miette cannot lay out: keep the facts.
                one = problem.plain();
            }
            let one = one.trim_end();
            match problem {
                // Its message, labels, help and snippet were made printable where it was made.
                ConfigError::At(_) => one.to_string(),
                // An unlocated message or a path: escaped here; only miette's colours stay.
                _ => crate::printable::escape_keeping_colour(one, color).into_owned(),
            }
        })
        .collect();
    if problems.len() > 1 {
        reports.push(format!("{error}"));
    }
    reports.join("\n\n") + "\n"
}

/// The longest line, in bytes, a label may sit on for miette to draw it. miette pads the
/// underline with `format!("{:width$}")` to the label's column, and a width past `u16::MAX`
/// panics (Rust 1.87 and later); a tab counts as 4 columns, a byte as at most 1.
const MAX_SNIPPET_LINE: usize = u16::MAX as usize / 4;

/// Whether every label of `problem` (and of its notes) lies on lines short enough for miette
/// to draw; a problem on a longer line is shown as `file:line:col: message` instead.
fn fits_snippet(problem: &ConfigError) -> bool {
    let ConfigError::At(located) = problem else {
        return true;
    };
    let short_lines = |text: &str, labels: &[LabeledSpan]| {
        labels.iter().all(|label| {
            let start = clamp_to_char_boundary(text, label.offset());
            let end = clamp_to_char_boundary(text, label.offset() + label.len());
            let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
            let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i);
            line_end - line_start < MAX_SNIPPET_LINE
        })
    };
    short_lines(located.source_code.inner(), &located.labels)
        && located
            .notes
            .iter()
            .all(|note| short_lines(note.source_code.inner(), &note.labels))
}

impl super::model::Config {
    /// An error at a configured value, for later stages (unknown guest or host, a rule that
    /// cannot hold): it renders with the same snippet as the loader's own errors.
    pub fn error_at(
        &self,
        span: &Span,
        message: impl Into<String>,
        label: impl Into<String>,
        help: Option<String>,
    ) -> ConfigError {
        located(&self.files, span, message, label, help, Vec::new())
    }

    /// Like [`Self::error_at`], with further labelled places (`(span, label)`), e.g. the other
    /// side of a conflict. Places in the same file share the snippet; others follow as notes.
    pub fn error_at_with_notes(
        &self,
        span: &Span,
        message: impl Into<String>,
        label: impl Into<String>,
        help: Option<String>,
        notes: Vec<(Span, String)>,
    ) -> ConfigError {
        let notes = notes
            .into_iter()
            .map(|(span, label)| Note { span, label })
            .collect();
        located(&self.files, span, message, label, help, notes)
    }

    /// File name, 1-based line and column of the start of `span`, for plain-text messages.
    pub fn line_col(&self, span: &Span) -> (String, usize, usize) {
        let Location { file, line, column } = location_of(&self.files, span);
        (file, line, column)
    }
}
