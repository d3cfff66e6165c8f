//! The one error type of the diff layer: a configuration value that does not fit the topology.

use crate::config::Span;

/// A guest or host block of the configuration that cannot be applied to the topology
/// (unknown or ambiguous name, a guest pinned to a drained host, …).
///
/// A plain value: the caller turns it into a diagnostic pointing at [`DiffError::span`] in
/// the config files, with [`DiffError::label`] under the span and [`DiffError::help`] below.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DiffError {
    /// Where in the configuration the offending label or value is written.
    pub span: Option<Span>,
    /// The whole sentence: what is wrong, naming the guest or host.
    pub message: String,
    /// Short text shown at the span.
    pub label: String,
    /// What to do about it (often a "did you mean" suggestion).
    pub help: Option<String>,
    /// The guest concerned, once known (the resolved name, else the label as written).
    pub guest: Option<String>,
    /// The host concerned, once known.
    pub host: Option<String>,
}
