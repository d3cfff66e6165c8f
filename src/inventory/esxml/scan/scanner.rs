//! The scanner's state machine: reads quick-xml events over a range of the file, tracks the
//! open elements, and builds the raw machines, networks, clusters and volumes as their start
//! and end tags go by. Separate from the raw types and the entry points, which only create a
//! scanner, run it over a range and finish it (the split scan also reads the state it ends in).

use std::borrow::Cow;
use std::ops::Range;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::inventory::esxml::blocks::Blocks;
use crate::inventory::esxml::error::{EsXmlError, EsXmlErrorKind, Location};
use crate::inventory::esxml::layout::GuestRefSpan;
use crate::inventory::esxml::position::LineCounter;

use super::capture::{Capture, normalize_eols};
use super::tags::{Action, RefKind, Tag};
use super::{
    IdRef, RawCluster, RawDocument, RawMachine, RawNetwork, RawVolume, TextField, push_small,
};

pub(super) struct Scanner<'a> {
    pub(super) source_name: &'a str,
    pub(super) text: &'a str,
    pub(super) tags: Vec<Tag>,
    pub(super) starts: Vec<usize>,
    pub(super) root_closed: bool,
    pub(super) lines: LineCounter,
    pub(super) capture: Option<Capture>,
    pub(super) buf: String,
    pub(super) doc: RawDocument<'a>,
    pub(super) machine: Option<RawMachine<'a>>,
    /// A guest reference written as `<machine id="…"></machine>`, until its end tag.
    pub(super) pending_ref: Option<GuestRefSpan>,
    pub(super) network: Option<RawNetwork<'a>>,
    pub(super) cluster: Option<RawCluster<'a>>,
    pub(super) volume: Option<RawVolume<'a>>,
    /// End tags (offsets of their `<`) that closed an element opened before the scanned range,
    /// i.e. one of the `context` the scanner started in; checked against the real start tags
    /// when the halves of a split scan are joined.
    pub(super) unmatched_ends: Vec<usize>,
}

/// Stands in `Scanner::starts` for an element opened before the scanned range.
const OPENED_BEFORE: usize = usize::MAX;

impl<'a> Scanner<'a> {
    /// A scanner for a range of `text` that starts inside the elements `context` (outermost
    /// first; empty at the start of the file).
    pub(super) fn new(source_name: &'a str, text: &'a str, context: &[Tag]) -> Self {
        let mut tags = Vec::with_capacity(16);
        tags.extend_from_slice(context);
        let mut starts = Vec::with_capacity(16);
        starts.resize(context.len(), OPENED_BEFORE);
        Scanner {
            source_name,
            text,
            tags,
            starts,
            root_closed: false,
            lines: LineCounter::new(),
            capture: None,
            buf: String::new(),
            doc: RawDocument::default(),
            machine: None,
            pending_ref: None,
            network: None,
            cluster: None,
            volume: None,
            unmatched_ends: Vec::new(),
        }
    }

    /// Reads the events of `text[range]`. Returns where the last event ends when it was an end
    /// tag (`None` otherwise), which tells a split scan whether its first half stopped cleanly
    /// between two elements. With `allow_unmatched_ends`, an end tag that closes an element of
    /// the starting context is recorded in `unmatched_ends` instead of being an error;
    /// quick-xml still checks that every other end tag matches its start tag.
    pub(super) fn run(
        &mut self,
        range: Range<usize>,
        allow_unmatched_ends: bool,
    ) -> Result<Option<usize>, EsXmlError> {
        let slice = &self.text[range.clone()];
        // quick-xml skips a byte order mark without counting it; read after it and add its
        // length back, so that every offset indexes `text` itself.
        let body = if range.start == 0 {
            slice.strip_prefix('\u{feff}').unwrap_or(slice)
        } else {
            slice
        };
        let base = range.start + slice.len() - body.len();
        let position = |reader: &Reader<&[u8]>| base + reader.buffer_position() as usize;
        let mut reader = Reader::from_str(body);
        reader.config_mut().allow_unmatched_ends = allow_unmatched_ends;
        // Skipping whitespace-only text halves the number of events. It must be off while a
        // leaf's text is buffered, or the space in `A &amp; B` after the entity would be lost.
        let mut trimming = true;
        reader.config_mut().trim_text_start = trimming;
        let mut last_end_tag = None;
        loop {
            let before = position(&reader);
            let event = reader.read_event().map_err(|e| {
                let at = base + reader.error_position() as usize;
                self.error_at(at, "", EsXmlErrorKind::Malformed(e.to_string()))
            })?;
            let end = position(&reader);
            // With trimming, whitespace before markup is consumed with it: find the `<` or `&`.
            let start = skip_whitespace(self.text, before);
            let mut ended_element = false;
            match event {
                Event::Start(e) => self.open(&e, start, end)?,
                Event::Empty(e) => {
                    self.open(&e, start, end)?;
                    self.close(start, end, true)?;
                }
                Event::End(_) => {
                    self.close(start, end, false)?;
                    ended_element = true;
                }
                Event::Text(t) => self.push_text(&t),
                Event::CData(t) => self.push_unescaped(&t.xml10_content(), start),
                Event::GeneralRef(r) => self.push_reference(&r, start)?,
                // A comment inside a leaf is not part of its text: stop slicing the raw input.
                Event::Comment(_) | Event::PI(_) => self.buffer_capture(start),
                Event::Eof => return Ok(last_end_tag),
                _ => {}
            }
            last_end_tag = ended_element.then_some(end);
            let want_trimming = !self.capture.as_ref().is_some_and(|c| c.buffered);
            if want_trimming != trimming {
                trimming = want_trimming;
                reader.config_mut().trim_text_start = trimming;
            }
        }
    }

    pub(super) fn error_at(
        &self,
        offset: usize,
        element: impl Into<String>,
        kind: EsXmlErrorKind,
    ) -> EsXmlError {
        EsXmlError::new(
            self.source_name,
            Some(Location::of(self.text, offset)),
            element,
            kind,
        )
    }

    fn open(&mut self, e: &BytesStart<'_>, start: usize, end: usize) -> Result<(), EsXmlError> {
        self.buffer_capture(start);
        let tag = Tag::of(e.local_name().as_ref());
        let action = self.action(tag);
        self.tags.push(tag);
        self.starts.push(start);
        match action {
            Action::Nothing => {}
            Action::Root => self.open_root(e, tag, start)?,
            Action::BeginMachine => {
                let id = self.required_id(e, start, "machine")?;
                let line = self.lines.line_at(self.text, start);
                self.machine = Some(RawMachine {
                    id,
                    offset: start,
                    line,
                    start_tag: start..end,
                    ..RawMachine::default()
                });
            }
            Action::GuestRef => {
                let guest_id = self.required_id(e, start, "machine")?;
                self.set_last_child(start);
                self.pending_ref = Some(GuestRefSpan {
                    guest_id: guest_id.into_owned(),
                    span: start..end,
                });
            }
            Action::MachineChild => self.set_last_child(start),
            Action::MachineRef(kind) => {
                let name = match kind {
                    RefKind::Network => "network",
                    RefKind::Cluster => "cluster",
                    RefKind::Volume => "edvVolume",
                };
                let id_ref = IdRef {
                    id: self.required_id(e, start, name)?,
                    offset: start,
                };
                if let Some(m) = self.machine.as_mut() {
                    match kind {
                        RefKind::Network => push_small(&mut m.network_refs, id_ref),
                        RefKind::Cluster => push_small(&mut m.cluster_refs, id_ref),
                        RefKind::Volume => push_small(&mut m.volume_refs, id_ref),
                    }
                }
            }
            Action::BeginNetwork => {
                let id = self.required_id(e, start, "network")?;
                self.network = Some(RawNetwork {
                    id,
                    offset: start,
                    ..RawNetwork::default()
                });
            }
            Action::BeginCluster => {
                let id = self.required_id(e, start, "cluster")?;
                self.cluster = Some(RawCluster {
                    id,
                    offset: start,
                    ..RawCluster::default()
                });
            }
            Action::VipMember => {
                let id_ref = IdRef {
                    id: self.required_id(e, start, "machine")?,
                    offset: start,
                };
                if let Some(c) = self.cluster.as_mut() {
                    push_small(&mut c.vip_members, id_ref);
                }
            }
            Action::BeginVolume => {
                let id = self.required_id(e, start, "edvVolume")?;
                self.volume = Some(RawVolume {
                    id,
                    offset: start,
                    ..RawVolume::default()
                });
            }
            Action::Capture(leaf) => {
                if leaf.is_machine_field() {
                    self.set_last_child(start);
                }
                self.capture = Some(Capture {
                    leaf,
                    depth: self.tags.len(),
                    offset: start,
                    content_start: end,
                    buffered: false,
                });
            }
        }
        Ok(())
    }

    fn open_root(&mut self, e: &BytesStart<'_>, tag: Tag, start: usize) -> Result<(), EsXmlError> {
        if self.root_closed {
            return Err(self.error_at(start, "", EsXmlErrorKind::ContentAfterRoot));
        }
        if tag != Tag::Root {
            let found = e.local_name().as_ref().to_string();
            let hint = if found == "domain" {
                " (it looks like a libvirt domain XML)".to_string()
            } else {
                String::new()
            };
            return Err(self.error_at(
                start,
                format!("<{found}>"),
                EsXmlErrorKind::WrongRoot { found, hint },
            ));
        }
        self.doc.root_offset = start;
        self.doc.oeda_version = self.attribute(e, start, "oedaversion")?;
        Ok(())
    }

    fn set_last_child(&mut self, start: usize) {
        if let Some(m) = self.machine.as_mut() {
            m.last_child_start = Some(start);
        }
    }

    fn close(&mut self, start: usize, end: usize, self_closing: bool) -> Result<(), EsXmlError> {
        let depth = self.tags.len();
        if let Some(capture) = self.capture.take_if(|c| c.depth == depth) {
            let value = if capture.buffered {
                Cow::Owned(self.buf.trim().to_string())
            } else if self_closing {
                Cow::Borrowed("")
            } else {
                normalize_eols(self.text[capture.content_start..start].trim())
            };
            self.store(
                capture.leaf,
                TextField {
                    value,
                    offset: capture.offset,
                },
            )?;
        }
        let tag = self.tags.pop().unwrap_or(Tag::Other);
        if matches!(self.starts.pop(), Some(OPENED_BEFORE) | None) {
            self.unmatched_ends.push(start);
        }
        use Tag::*;
        match (self.tags.as_slice(), tag) {
            ([], Root) => self.root_closed = true,
            ([Root, Machines], Machine) => {
                if let Some(mut m) = self.machine.take() {
                    m.end_tag = (!self_closing).then_some(start..end);
                    self.doc.machines.push(m);
                }
            }
            ([Root, Machines, Machine], Machine) => {
                if let (Some(mut r), Some(m)) = (self.pending_ref.take(), self.machine.as_mut()) {
                    r.span.end = end;
                    push_small(&mut m.child_refs, r);
                }
            }
            ([Root, Networks], Network) => push_some(&mut self.doc.networks, self.network.take()),
            ([Root, Software, Clusters], Cluster) => {
                push_some(&mut self.doc.clusters, self.cluster.take())
            }
            ([Root, Storage, EdvVolumes], EdvVolume) => {
                push_some(&mut self.doc.volumes, self.volume.take())
            }
            _ => {}
        }
        Ok(())
    }

    pub(super) fn finish(self) -> Result<RawDocument<'a>, EsXmlError> {
        if let Some(&open_offset) = self.starts.last() {
            let open = element_name_at(self.text, open_offset).to_string();
            let open_line = Location::of(self.text, open_offset).line;
            return Err(self.error_at(
                self.text.len(),
                "",
                EsXmlErrorKind::Truncated { open, open_line },
            ));
        }
        if !self.root_closed {
            return Err(self.error_at(self.text.len(), "", EsXmlErrorKind::NoRoot));
        }
        Ok(self.doc)
    }
}

fn skip_whitespace(text: &str, offset: usize) -> usize {
    let bytes = text.as_bytes();
    let mut at = offset;
    while at < bytes.len() && matches!(bytes[at], b' ' | b'\t' | b'\r' | b'\n') {
        at += 1;
    }
    at
}

fn push_some<T>(list: &mut Blocks<T>, item: Option<T>) {
    if let Some(item) = item {
        list.push(item);
    }
}

/// The local name of the element whose `<` is at `offset` (`model:machine` → `machine`).
fn element_name_at(text: &str, offset: usize) -> &str {
    let rest = text.get(offset + 1..).unwrap_or("");
    let name_end = rest
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .unwrap_or(rest.len());
    let name = &rest[..name_end];
    name.rsplit(':').next().unwrap_or(name)
}
