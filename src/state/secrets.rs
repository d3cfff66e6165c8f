//! Secrets never reach the state file. The state records guests' libvirt definitions (what an
//! `offline_force` move defines when the source host is down); a definition may carry a console
//! password (`<graphics type='vnc' passwd='…'>`, SPICE too) when it was read with
//! `VIR_DOMAIN_XML_SECURE`. Before the state is written, every `passwd` attribute is replaced by
//! [`REMOVED`]; `offline_force` then gives each such console a fresh random password
//! ([`lock_removed`]), so a console is never left open and the old password never touches the
//! disk.

use quick_xml::XmlVersion;
use quick_xml::escape::escape;
use quick_xml::events::{BytesStart, Event};

/// What a removed secret is replaced with in a recorded definition.
pub const REMOVED: &str = "berth:removed";

/// Attributes of libvirt's domain XML that hold a secret inline.
const SECRET_ATTRIBUTES: &[&str] = &["passwd"];

/// `xml` with every secret attribute's value replaced by [`REMOVED`]; `None` when the text is
/// not well-formed enough to tell (the caller then records no definition at all rather than one
/// that might hold a secret).
pub fn strip_secrets(xml: &str) -> Option<String> {
    replace_secrets(xml, |_| REMOVED.to_string()).map(|(text, _)| text)
}

/// `xml` with every secret attribute that holds [`REMOVED`] given a fresh random value, and how
/// many tags had one; `None` when the text is not well-formed.
pub fn lock_removed(xml: &str) -> Option<(String, usize)> {
    replace_secrets(xml, |value| {
        if value == REMOVED {
            uuid::Uuid::new_v4().simple().to_string()
        } else {
            value.to_string()
        }
    })
}

/// Rewrites the start tags that have a secret attribute, with `new(value)` as its value;
/// everything else is kept byte for byte.
fn replace_secrets(xml: &str, new: impl Fn(&str) -> String) -> Option<(String, usize)> {
    if !SECRET_ATTRIBUTES.iter().any(|a| xml.contains(a)) {
        return Some((xml.to_string(), 0));
    }
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = String::with_capacity(xml.len());
    let mut copied = 0;
    let mut replaced = 0;
    loop {
        let before = reader.buffer_position() as usize;
        let event = reader.read_event().ok()?;
        let after = reader.buffer_position() as usize;
        let (start, empty) = match &event {
            Event::Start(s) => (s, false),
            Event::Empty(s) => (s, true),
            Event::Eof => break,
            _ => continue,
        };
        if let Some(tag) = rewrite_tag(start, empty, &new)? {
            out.push_str(xml.get(copied..before)?);
            out.push_str(&tag);
            copied = after;
            replaced += 1;
        }
    }
    out.push_str(xml.get(copied..)?);
    Some((out, replaced))
}

/// The start tag rebuilt with new secret values, or `None` inside `Some` when none changes.
fn rewrite_tag(
    start: &BytesStart,
    empty: bool,
    new: &impl Fn(&str) -> String,
) -> Option<Option<String>> {
    let mut attrs = Vec::new();
    let mut secret = false;
    for a in start.attributes() {
        let a = a.ok()?;
        let key = a.key.as_ref().to_string();
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .ok()?
            .into_owned();
        if SECRET_ATTRIBUTES.contains(&key.as_str()) {
            let replacement = new(&value);
            secret |= replacement != value;
            attrs.push((key, replacement));
        } else {
            attrs.push((key, value));
        }
    }
    if !secret {
        return Some(None);
    }
    let name = start.name().as_ref().to_string();
    let mut tag = format!("<{name}");
    for (key, value) in attrs {
        tag.push_str(&format!(" {key}=\"{}\"", escape(&value)));
    }
    tag.push_str(if empty { "/>" } else { ">" });
    Some(Some(tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &str = "<domain type='kvm'>\n  <name>vm</name>\n  <devices>\n    \
        <graphics type='vnc' port='-1' autoport='yes' passwd='s3&amp;cret'>\n      <listen type='address'/>\n    \
        </graphics>\n    <graphics type=\"spice\" passwd=\"x\"/>\n  </devices>\n</domain>\n";

    #[test]
    fn passwords_are_removed_and_the_rest_kept_byte_for_byte() {
        let stripped = strip_secrets(DOMAIN).unwrap();
        assert!(!stripped.contains("s3&amp;cret") && !stripped.contains("passwd=\"x\""));
        assert_eq!(
            stripped,
            DOMAIN
                .replace(
                    "<graphics type='vnc' port='-1' autoport='yes' passwd='s3&amp;cret'>",
                    "<graphics type=\"vnc\" port=\"-1\" autoport=\"yes\" passwd=\"berth:removed\">"
                )
                .replace(
                    "<graphics type=\"spice\" passwd=\"x\"/>",
                    "<graphics type=\"spice\" passwd=\"berth:removed\"/>"
                )
        );
        let plain = "<domain><name>vm</name></domain>";
        assert_eq!(strip_secrets(plain).as_deref(), Some(plain));
        assert_eq!(strip_secrets("<domain passwd='x'><a></domain>"), None);
    }

    #[test]
    fn removed_passwords_become_fresh_random_ones() {
        let stripped = strip_secrets(DOMAIN).unwrap();
        let (locked, count) = lock_removed(&stripped).unwrap();
        assert_eq!(count, 2);
        assert!(!locked.contains(REMOVED), "{locked}");
        assert_eq!(locked.matches("passwd=\"").count(), 2, "{locked}");
        let (again, _) = lock_removed(&stripped).unwrap();
        assert_ne!(locked, again, "each lock is a new random password");
        // A definition that still has its real password keeps it.
        assert_eq!(lock_removed(DOMAIN).unwrap(), (DOMAIN.to_string(), 0));
    }
}
