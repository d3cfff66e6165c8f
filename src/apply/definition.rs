//! Edits of a libvirt domain definition (its XML text) for the SR-IOV steps.
//!
//! DETACH_INTERFACES moves every `<interface type='hostdev'>` out of `<devices>` into an
//! element of berth's own in the domain's `<metadata>`; ATTACH_INTERFACES moves them back,
//! each with the source address of a virtual function of the new host. Keeping them in the
//! definition itself makes each step a single `define`: there is no moment at which the
//! interfaces are gone from the definition and not recorded in it, and the record travels with
//! the definition to the target (libvirt keeps `<metadata>` in the migratable XML).
//!
//! Edits are splices of the original text: whatever berth does not touch stays exactly as
//! libvirt wrote it (MAC, driver, model, VLAN, the guest-side PCI address of each interface).

use std::ops::Range;

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};

use crate::config::PciAddress;
use crate::inventory::InterfaceKind;
use crate::inventory::libvirt::parse_domain_devices;
use crate::state::DetachedInterface;

/// Namespace of berth's element in a domain's `<metadata>`.
pub const METADATA_NS: &str = "urn:berth:detached-interfaces:1";
/// Local name of berth's element in `<metadata>`.
const STASH: &str = "detached-interfaces";

/// One element of a document: where it is and what its start tag says.
#[derive(Debug, Clone)]
struct Element {
    /// Qualified names from the root down to this element.
    path: Vec<String>,
    /// From `<` of the start tag to `>` of the end tag.
    outer: Range<usize>,
    /// Between the tags; `None` for an empty element (`<a/>`).
    inner: Option<Range<usize>>,
    attrs: Vec<(String, String)>,
}

impl Element {
    fn is(&self, path: &[&str]) -> bool {
        self.path.len() == path.len() && self.path.iter().zip(path).all(|(a, b)| a == b)
    }

    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn local_name(&self) -> &str {
        let name = self.path.last().map(String::as_str).unwrap_or_default();
        name.rsplit(':').next().unwrap_or(name)
    }

    /// Whether this is berth's element: local name and a namespace declaration of ours.
    fn is_stash(&self) -> bool {
        self.local_name() == STASH
            && self
                .attrs
                .iter()
                .any(|(n, v)| (n == "xmlns" || n.starts_with("xmlns:")) && v == METADATA_NS)
    }
}

fn attributes(start: &BytesStart) -> Result<Vec<(String, String)>, String> {
    start
        .attributes()
        .map(|a| {
            let a = a.map_err(|e| e.to_string())?;
            let value = a
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| e.to_string())?;
            Ok((a.key.as_ref().to_string(), value.into_owned()))
        })
        .collect()
}

/// An element whose end tag is not read yet: qualified name, start and end of its start tag,
/// attributes.
type OpenTag = (String, usize, usize, Vec<(String, String)>);

/// Every element of `xml`, in the order their end tags close (children before parents).
fn elements(xml: &str) -> Result<Vec<Element>, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut open: Vec<OpenTag> = Vec::new();
    let mut out = Vec::new();
    let path_to = |open: &[OpenTag], last: String| {
        open.iter()
            .map(|o| o.0.clone())
            .chain([last])
            .collect::<Vec<_>>()
    };
    loop {
        let before = reader.buffer_position() as usize;
        let event = reader
            .read_event()
            .map_err(|e| format!("at byte {}: {e}", reader.error_position()))?;
        let after = reader.buffer_position() as usize;
        match event {
            Event::Start(start) => {
                let name = start.name().as_ref().to_string();
                open.push((name, before, after, attributes(&start)?));
            }
            Event::Empty(start) => {
                let name = start.name().as_ref().to_string();
                let attrs = attributes(&start)?;
                out.push(Element {
                    path: path_to(&open, name),
                    outer: before..after,
                    inner: None,
                    attrs,
                });
            }
            Event::End(_) => {
                let (name, start, start_end, attrs) =
                    open.pop().ok_or("an end tag without its start tag")?;
                out.push(Element {
                    path: path_to(&open, name),
                    outer: start..after,
                    inner: Some(start_end..before),
                    attrs,
                });
            }
            Event::Eof => break,
            _ => {}
        }
    }
    match open.last() {
        Some((name, ..)) => Err(format!("<{name}> is not closed")),
        None => Ok(out),
    }
}

/// Replaces byte ranges of `text` (non-overlapping, any order).
fn splice(text: &str, mut edits: Vec<(Range<usize>, String)>) -> String {
    edits.sort_by_key(|(r, _)| (r.start, r.end));
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (range, replacement) in edits {
        out.push_str(&text[at..range.start]);
        out.push_str(&replacement);
        at = range.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Reads one `<interface type='hostdev'>` element: its MAC and host source address.
fn detached(xml: &str) -> Result<DetachedInterface, String> {
    let devices = parse_domain_devices(&format!("<domain><devices>{xml}</devices></domain>"))
        .map_err(|e| e.to_string())?;
    match devices.interfaces.as_slice() {
        [i] if i.kind == InterfaceKind::Hostdev => Ok(DetachedInterface {
            mac: i.mac.clone(),
            source: i.source.clone(),
            xml: xml.to_string(),
        }),
        _ => Err(format!("not one SR-IOV (hostdev) interface: {xml}")),
    }
}

/// The parsed document: its elements and the ones the SR-IOV steps look at.
struct Definition<'a> {
    xml: &'a str,
    elements: Vec<Element>,
}

impl<'a> Definition<'a> {
    fn parse(xml: &'a str) -> Result<Self, String> {
        let elements = elements(xml)?;
        if !elements.last().is_some_and(|e| e.is(&["domain"])) {
            return Err("the root element is not <domain>".into());
        }
        Ok(Definition { xml, elements })
    }

    fn one(&self, path: &[&str]) -> Option<&Element> {
        self.elements.iter().find(|e| e.is(path))
    }

    /// The `<interface type='hostdev'>` elements of `<devices>`, in document order.
    fn hostdev_interfaces(&self) -> Vec<&Element> {
        let mut found: Vec<&Element> = self
            .elements
            .iter()
            .filter(|e| {
                e.is(&["domain", "devices", "interface"]) && e.attr("type") == Some("hostdev")
            })
            .collect();
        found.sort_by_key(|e| e.outer.start);
        found
    }

    fn stash(&self) -> Option<&Element> {
        self.elements
            .iter()
            .find(|e| e.path.len() == 3 && e.path[..2] == ["domain", "metadata"] && e.is_stash())
    }

    /// The interfaces recorded in berth's metadata element, in document order.
    fn stashed(&self) -> Result<Vec<DetachedInterface>, String> {
        let Some(stash) = self.stash() else {
            return Ok(Vec::new());
        };
        let mut children: Vec<&Element> = self
            .elements
            .iter()
            .filter(|e| {
                e.path.len() == 4 && e.path[..3] == stash.path[..] && e.local_name() == "interface"
            })
            .filter(|e| stash.outer.start < e.outer.start && e.outer.end <= stash.outer.end)
            .collect();
        children.sort_by_key(|e| e.outer.start);
        children
            .iter()
            .map(|e| detached(&self.xml[e.outer.clone()]))
            .collect()
    }

    /// An edit that puts `content` at the end of `<path>`'s content (turning `<path/>` into
    /// `<path>…</path>`); `None` when there is no such element.
    fn append_to(&self, path: &[&str], content: &str) -> Option<(Range<usize>, String)> {
        let e = self.one(path)?;
        Some(match &e.inner {
            Some(inner) => (inner.end..inner.end, content.to_string()),
            None => {
                let tag = e.path.last().map(String::as_str).unwrap_or_default();
                let start_tag = self.xml[e.outer.clone()]
                    .trim_end_matches('>')
                    .trim_end_matches('/');
                (e.outer.clone(), format!("{start_tag}>{content}</{tag}>"))
            }
        })
    }

    /// The edit that writes berth's metadata element with `interfaces` (or removes it when
    /// there are none), replacing the one there is.
    fn stash_edit(
        &self,
        interfaces: &[DetachedInterface],
    ) -> Result<Option<(Range<usize>, String)>, String> {
        let element = (!interfaces.is_empty()).then(|| {
            let body: String = interfaces
                .iter()
                .map(|i| format!("\n      {}", i.xml.trim()))
                .collect();
            format!("<berth:{STASH} xmlns:berth=\"{METADATA_NS}\">{body}\n    </berth:{STASH}>")
        });
        Ok(match (self.stash(), element) {
            (Some(old), Some(new)) => Some((old.outer.clone(), new)),
            (Some(old), None) => {
                // An empty <metadata> left behind is dropped with it.
                let metadata = self.one(&["domain", "metadata"]).filter(|m| {
                    let inner = m.inner.clone().unwrap_or_default();
                    let rest = format!(
                        "{}{}",
                        &self.xml[inner.start..old.outer.start],
                        &self.xml[old.outer.end..inner.end]
                    );
                    rest.trim().is_empty()
                });
                Some(match metadata {
                    Some(m) => (line_of(self.xml, &m.outer), String::new()),
                    None => (old.outer.clone(), String::new()),
                })
            }
            (None, None) => None,
            (None, Some(new)) => Some(
                match self.append_to(&["domain", "metadata"], &format!("\n    {new}\n  ")) {
                    Some(edit) => edit,
                    None => {
                        let metadata = format!("  <metadata>\n    {new}\n  </metadata>\n");
                        self.append_to(&["domain"], &metadata)
                            .ok_or("no <domain> element")?
                    }
                },
            ),
        })
    }
}

/// The SR-IOV interfaces of a definition's `<devices>` (MAC and host source), in order.
pub fn hostdev_interfaces(xml: &str) -> Result<Vec<DetachedInterface>, String> {
    let def = Definition::parse(xml)?;
    def.hostdev_interfaces()
        .iter()
        .map(|e| detached(&xml[e.outer.clone()]))
        .collect()
}

/// The interfaces berth's metadata element in the definition records as detached.
pub fn stashed_interfaces(xml: &str) -> Result<Vec<DetachedInterface>, String> {
    Definition::parse(xml)?.stashed()
}

/// Takes every SR-IOV interface out of `<devices>` and records it in berth's metadata element
/// (after any recorded earlier; a MAC recorded earlier is replaced). Returns the new definition
/// and everything the metadata element now records; the definition is unchanged when there is
/// no SR-IOV interface in it.
pub fn detach_hostdev_interfaces(xml: &str) -> Result<(String, Vec<DetachedInterface>), String> {
    let def = Definition::parse(xml)?;
    let found = def.hostdev_interfaces();
    let mut recorded = def.stashed()?;
    if found.is_empty() {
        return Ok((xml.to_string(), recorded));
    }
    let removed: Vec<DetachedInterface> = found
        .iter()
        .map(|e| detached(&xml[e.outer.clone()]))
        .collect::<Result<_, _>>()?;
    recorded.retain(|old| {
        !removed
            .iter()
            .any(|new| new.mac.is_some() && new.mac == old.mac)
    });
    recorded.extend(removed);
    let mut edits: Vec<(Range<usize>, String)> = found
        .iter()
        .map(|e| (line_of(xml, &e.outer), String::new()))
        .collect();
    edits.extend(def.stash_edit(&recorded)?);
    Ok((splice(xml, edits), recorded))
}

/// Gives `interfaces` back to `<devices>`, each with the source address paired with it, and
/// drops berth's metadata element. SR-IOV interfaces already in `<devices>` with the MAC of one
/// of them are replaced (a definition from an unreachable host still has the old addresses).
pub fn attach_interfaces(
    xml: &str,
    interfaces: &[(DetachedInterface, PciAddress)],
) -> Result<String, String> {
    let def = Definition::parse(xml)?;
    let macs: Vec<&str> = interfaces
        .iter()
        .filter_map(|(i, _)| i.mac.as_deref())
        .collect();
    let mut edits = Vec::new();
    for e in def.hostdev_interfaces() {
        let present = detached(&xml[e.outer.clone()])?;
        if present.mac.as_deref().is_some_and(|m| macs.contains(&m)) {
            edits.push((line_of(xml, &e.outer), String::new()));
        }
    }
    let mut added = String::new();
    for (interface, address) in interfaces {
        added.push_str("  ");
        added.push_str(&with_source_address(interface.xml.trim(), address)?);
        added.push_str("\n  ");
    }
    edits.push(
        def.append_to(&["domain", "devices"], &added)
            .ok_or("the definition has no <devices>")?,
    );
    edits.extend(def.stash_edit(&[])?);
    Ok(splice(xml, edits))
}

/// `interface` (one `<interface>` element) with its `<source>` set to `address`.
fn with_source_address(interface: &str, address: &PciAddress) -> Result<String, String> {
    let elements = elements(interface)?;
    let source = elements
        .iter()
        .find(|e| e.path.len() == 2 && e.path[1] == "source")
        .ok_or_else(|| format!("no <source> in {interface}"))?;
    let replacement = format!("<source>{}</source>", address.libvirt_element());
    Ok(splice(interface, vec![(source.outer.clone(), replacement)]))
}

/// `range` widened to its whole line when nothing else is on that line, so that removing an
/// element leaves no blank line.
fn line_of(text: &str, range: &Range<usize>) -> Range<usize> {
    let start = text[..range.start].rfind('\n').map_or(0, |i| i + 1);
    let end = text[range.end..]
        .find('\n')
        .map_or(text.len(), |i| range.end + i + 1);
    let blank = |s: &str| s.chars().all(char::is_whitespace);
    if blank(&text[start..range.start]) && blank(&text[range.end..end]) {
        start..end
    } else {
        range.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KVM_GUEST: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/oeda-fixtures/kvm_guest.xml"
    ));

    const SMALL: &str = "<domain type='kvm'>\n  <name>vm01</name>\n  <devices>\n    <interface type='bridge'>\n      <source bridge='vmeth0'/>\n    </interface>\n    <interface type='hostdev' managed='yes'>\n      <mac address='52:54:00:01:01:04'/>\n      <driver name='vfio'/>\n      <source><address type='pci' domain='0x0000' bus='0x3b' slot='0x02' function='0x0'/></source>\n      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0' multifunction='on'/>\n    </interface>\n    <interface type='hostdev' managed='yes'>\n      <mac address='52:54:00:01:01:05'/>\n      <source>\n        <address type='pci' domain='0x0000' bus='0x5e' slot='0x02' function='0x0'/>\n      </source>\n    </interface>\n  </devices>\n</domain>\n";

    fn vf(text: &str) -> PciAddress {
        PciAddress::parse(text).unwrap()
    }

    fn macs(list: &[DetachedInterface]) -> Vec<&str> {
        list.iter()
            .map(|i| i.mac.as_deref().unwrap_or("-"))
            .collect()
    }

    #[test]
    fn detach_moves_the_interfaces_into_metadata_and_back() {
        let (detached, recorded) = detach_hostdev_interfaces(SMALL).unwrap();
        assert_eq!(macs(&recorded), ["52:54:00:01:01:04", "52:54:00:01:01:05"]);
        assert_eq!(recorded[1].source, "0000:5e:02.0");
        assert!(
            recorded[0].xml.contains("multifunction='on'")
                && recorded[0].xml.contains("<driver name='vfio'/>")
        );
        assert_eq!(hostdev_interfaces(&detached).unwrap(), vec![]);
        assert_eq!(stashed_interfaces(&detached).unwrap(), recorded);
        // The bridge interface and the rest are untouched, and no blank lines are left.
        assert!(
            detached
                .contains("<interface type='bridge'>\n      <source bridge='vmeth0'/>\n    </interface>\n  </devices>")
        );
        assert!(detached.contains(&format!(
            "<metadata>\n    <berth:detached-interfaces xmlns:berth=\"{METADATA_NS}\">"
        )));
        assert!(!detached.contains("\n\n"), "{detached}");

        // Detaching again changes nothing.
        let (again, still) = detach_hostdev_interfaces(&detached).unwrap();
        assert_eq!((again.as_str(), &still), (detached.as_str(), &recorded));

        let restored = attach_interfaces(
            &detached,
            &[
                (recorded[0].clone(), vf("0000:3b:02.5")),
                (recorded[1].clone(), vf("0000:5e:02.5")),
            ],
        )
        .unwrap();
        let back = hostdev_interfaces(&restored).unwrap();
        assert_eq!(macs(&back), ["52:54:00:01:01:04", "52:54:00:01:01:05"]);
        assert_eq!(
            back.iter().map(|i| i.source.as_str()).collect::<Vec<_>>(),
            ["0000:3b:02.5", "0000:5e:02.5"]
        );
        assert!(
            back[0]
                .xml
                .contains("bus='0x04' slot='0x00' function='0x0' multifunction='on'"),
            "guest address kept"
        );
        assert_eq!(stashed_interfaces(&restored).unwrap(), vec![]);
        assert!(
            !restored.contains("berth:") && !restored.contains("<metadata>"),
            "{restored}"
        );
        parse_domain_devices(&restored).unwrap();
    }

    #[test]
    fn an_exadata_guest_definition_round_trips() {
        let (detached, recorded) = detach_hostdev_interfaces(KVM_GUEST).unwrap();
        assert_eq!(recorded.len(), 4);
        let devices = parse_domain_devices(&detached).unwrap();
        assert!(
            devices
                .interfaces
                .iter()
                .all(|i| i.kind != InterfaceKind::Hostdev)
        );
        assert_eq!(
            devices.interfaces.len(),
            parse_domain_devices(KVM_GUEST).unwrap().interfaces.len() - 4
        );
        let pairs: Vec<_> = recorded
            .iter()
            .map(|i| (i.clone(), vf(&i.source)))
            .collect();
        let restored = attach_interfaces(&detached, &pairs).unwrap();
        assert_eq!(
            hostdev_interfaces(&restored).unwrap(),
            hostdev_interfaces(KVM_GUEST)
                .unwrap()
                .into_iter()
                .map(|mut i| {
                    // Only the <source> is rewritten (in libvirt's one-line form).
                    i.xml = with_source_address(&i.xml, &vf(&i.source)).unwrap();
                    i
                })
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn metadata_written_by_libvirt_is_read_whatever_the_prefix() {
        let xml = format!(
            "<domain><name>vm</name><metadata><other:x xmlns:other='urn:other'/><b:detached-interfaces xmlns:b=\"{METADATA_NS}\">\
             <interface type=\"hostdev\" managed=\"yes\"><mac address=\"52:54:00:00:00:01\"/><source><address type=\"pci\" domain=\"0x0000\" bus=\"0xaf\" slot=\"0x00\" function=\"0x2\"/></source></interface>\
             </b:detached-interfaces></metadata><devices/></domain>"
        );
        let stashed = stashed_interfaces(&xml).unwrap();
        assert_eq!(
            (stashed[0].mac.as_deref(), stashed[0].source.as_str()),
            (Some("52:54:00:00:00:01"), "0000:af:00.2")
        );
        // <devices/> grows content; other metadata stays.
        let restored =
            attach_interfaces(&xml, &[(stashed[0].clone(), vf("0000:af:00.3"))]).unwrap();
        assert!(
            restored.contains("<other:x xmlns:other='urn:other'/>")
                && !restored.contains("detached-interfaces")
        );
        assert_eq!(
            hostdev_interfaces(&restored).unwrap()[0].source,
            "0000:af:00.3"
        );
    }

    #[test]
    fn a_definition_with_old_addresses_is_readdressed_not_doubled() {
        // What an offline_force move defines: the interfaces still carry the dead host's VFs.
        let recorded = hostdev_interfaces(SMALL).unwrap();
        let pairs = [
            (recorded[0].clone(), vf("0000:3b:03.0")),
            (recorded[1].clone(), vf("0000:5e:03.0")),
        ];
        let restored = attach_interfaces(SMALL, &pairs).unwrap();
        let now = hostdev_interfaces(&restored).unwrap();
        assert_eq!(
            now.iter().map(|i| i.source.as_str()).collect::<Vec<_>>(),
            ["0000:3b:03.0", "0000:5e:03.0"]
        );
    }

    #[test]
    fn what_is_not_a_domain_definition_is_refused() {
        assert!(
            detach_hostdev_interfaces("<domain>")
                .unwrap_err()
                .contains("not closed")
        );
        assert!(
            detach_hostdev_interfaces("<node/>")
                .unwrap_err()
                .contains("not <domain>")
        );
        let no_source = "<domain><devices><interface type='hostdev'><mac address='x'/></interface></devices></domain>";
        assert!(detach_hostdev_interfaces(no_source).is_err());
    }
}
