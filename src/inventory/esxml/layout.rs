//! Where each KVM host's `<machine>` and its guest references sit in the es.xml text.
//!
//! The rewrite edits these byte ranges and nothing else, so every other byte of the operator's
//! file (comments, attribute quoting, indentation, unknown elements) survives a move unchanged.

use std::collections::HashMap;
use std::ops::Range;

/// Byte ranges of the KVM hosts in one es.xml text, keyed by host machine id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EsLayout {
    pub hosts: HashMap<String, HostLayout>,
}

/// One KVM host `<machine>` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLayout {
    /// The `<machine id="…">` start tag.
    pub start_tag: Range<usize>,
    /// The `</machine>` end tag (`None` for a self-closing `<machine …/>`).
    pub end_tag: Option<Range<usize>>,
    /// Start of the last direct child element, which gives the indentation children use.
    pub last_child_start: Option<usize>,
    /// The host's `<machine id="GUEST"/>` children in file order.
    pub guest_refs: Vec<GuestRefSpan>,
}

/// One `<machine id="GUEST"/>` child of a host: the whole element, from `<` to the end of its
/// self-closing tag or end tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestRefSpan {
    pub guest_id: String,
    pub span: Range<usize>,
}
