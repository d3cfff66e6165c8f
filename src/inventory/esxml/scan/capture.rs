//! Collecting the text of a leaf element (sliced from the input when plain, buffered when it
//! has entities, CDATA or nested markup) and filing it into the element being read. Separate
//! because text handling is its own small state machine inside the scanner's.

use std::borrow::Cow;

use quick_xml::events::{BytesRef, BytesText};

use crate::inventory::esxml::error::{EsXmlError, EsXmlErrorKind, Location, machine_element};

use super::scanner::Scanner;
use super::tags::Leaf;
use super::{RawMachine, RawNetwork, RawVolume, TextField};

/// A leaf element whose text is being collected. Plain text is sliced from the input when the
/// element closes; only entities, CDATA or nested markup switch to collecting into a buffer.
pub(super) struct Capture {
    pub(super) leaf: Leaf,
    pub(super) depth: usize,
    /// Where the leaf's start tag begins.
    pub(super) offset: usize,
    /// Just after the start tag: where the content begins.
    pub(super) content_start: usize,
    pub(super) buffered: bool,
}

/// XML 1.0 end-of-line handling for text sliced straight from the input.
pub(super) fn normalize_eols(raw: &str) -> Cow<'_, str> {
    if raw.contains('\r') {
        Cow::Owned(raw.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(raw)
    }
}

impl<'a> Scanner<'a> {
    /// Switches the current capture (if any) to buffering, with the plain text read so far up
    /// to `upto`. Called before anything that cannot be sliced from the input.
    pub(super) fn buffer_capture(&mut self, upto: usize) {
        if let Some(capture) = self.capture.as_mut().filter(|c| !c.buffered) {
            capture.buffered = true;
            self.buf.clear();
            self.buf
                .push_str(&normalize_eols(&self.text[capture.content_start..upto]));
        }
    }

    /// Text is only needed while a capture is buffered (plain text is sliced from the input
    /// when its element closes), so it is not even normalized otherwise.
    pub(super) fn push_text(&mut self, text: &BytesText<'_>) {
        if self.capture.as_ref().is_some_and(|c| c.buffered) {
            self.buf.push_str(&text.xml10_content());
        }
    }

    pub(super) fn push_unescaped(&mut self, text: &str, start: usize) {
        if self.capture.is_some() {
            self.buffer_capture(start);
            self.buf.push_str(text);
        }
    }

    pub(super) fn push_reference(
        &mut self,
        r: &BytesRef<'_>,
        start: usize,
    ) -> Result<(), EsXmlError> {
        if self.capture.is_none() {
            return Ok(());
        }
        self.buffer_capture(start);
        let resolved = match r.resolve_char_ref() {
            Ok(Some(c)) => Some(c),
            Ok(None) => {
                quick_xml::escape::resolve_predefined_entity(r).and_then(|s| s.chars().next())
            }
            Err(_) => None,
        };
        match resolved {
            Some(c) => {
                self.buf.push(c);
                Ok(())
            }
            None => Err(self.error_at(
                start,
                "",
                EsXmlErrorKind::Malformed(format!("unknown or invalid reference `&{};`", &**r)),
            )),
        }
    }

    /// Files the collected text of a leaf into the element being read.
    pub(super) fn store(&mut self, leaf: Leaf, field: TextField<'a>) -> Result<(), EsXmlError> {
        if leaf == Leaf::OsType {
            self.refuse_xen(&field)?;
        }
        let slot = match leaf {
            Leaf::CustomerName => Some(&mut self.doc.customer_name),
            l if l.is_machine_field() => self.machine.as_mut().map(|m| machine_slot(m, l)),
            l if l.is_network_field() => self.network.as_mut().map(|n| network_slot(n, l)),
            l if l.is_volume_field() => self.volume.as_mut().map(|v| volume_slot(v, l)),
            _ => self.cluster.as_mut().map(|c| &mut c.name),
        };
        let Some(slot) = slot else { return Ok(()) };
        if let Some(first) = slot {
            let first_line = Location::of(self.text, first.offset).line;
            let kind = EsXmlErrorKind::DuplicateElement {
                name: leaf.name(),
                first_line,
            };
            return Err(self.error_at(field.offset, self.owner_of(leaf), kind));
        }
        *slot = Some(field);
        Ok(())
    }

    /// The element that holds `leaf`, for messages (built only when there is an error).
    fn owner_of(&self, leaf: Leaf) -> String {
        let (element, id) = match leaf {
            Leaf::CustomerName => return String::new(),
            l if l.is_machine_field() => ("machine", self.machine.as_ref().map(|m| &*m.id)),
            l if l.is_network_field() => ("network", self.network.as_ref().map(|n| &*n.id)),
            l if l.is_volume_field() => ("edvVolume", self.volume.as_ref().map(|v| &*v.id)),
            _ => ("cluster", self.cluster.as_ref().map(|c| &*c.id)),
        };
        id.map(|id| format!("<{element} id=\"{id}\">"))
            .unwrap_or_default()
    }

    /// Xen files are refused at the first Xen machine, before any other check, so the operator
    /// sees the real reason rather than a consequence of it.
    fn refuse_xen(&self, os_type: &TextField<'_>) -> Result<(), EsXmlError> {
        let xen = ["LinuxDom0", "LinuxGuest"]
            .iter()
            .any(|x| os_type.value.eq_ignore_ascii_case(x));
        if !xen {
            return Ok(());
        }
        let element = self
            .machine
            .as_ref()
            .map(|m| machine_element(&m.id))
            .unwrap_or_default();
        Err(self.error_at(
            os_type.offset,
            element,
            EsXmlErrorKind::Xen {
                os_type: os_type.value.to_string(),
            },
        ))
    }
}

fn machine_slot<'r, 'a>(m: &'r mut RawMachine<'a>, leaf: Leaf) -> &'r mut Option<TextField<'a>> {
    match leaf {
        Leaf::HostName => &mut m.host_name,
        Leaf::MachineType => &mut m.machine_type,
        Leaf::OsType => &mut m.os_type,
        Leaf::PhysicalMemorySize => &mut m.physical_memory,
        Leaf::GuestCores => &mut m.guest_cores,
        Leaf::GuestMemory => &mut m.guest_memory,
        _ => &mut m.image_version,
    }
}

fn network_slot<'r, 'a>(n: &'r mut RawNetwork<'a>, leaf: Leaf) -> &'r mut Option<TextField<'a>> {
    match leaf {
        Leaf::NetworkType => &mut n.network_type,
        Leaf::Master => &mut n.master,
        Leaf::VlanId => &mut n.vlan_id,
        _ => &mut n.interface_name,
    }
}

fn volume_slot<'r, 'a>(v: &'r mut RawVolume<'a>, leaf: Leaf) -> &'r mut Option<TextField<'a>> {
    match leaf {
        Leaf::EdvVolumeName => &mut v.name,
        Leaf::EdvDevicePath => &mut v.device_path,
        _ => &mut v.volume_type,
    }
}
