//! Writes guest moves back into es.xml: each moved guest's `<machine id="GUEST"/>` reference
//! leaves its source host's `<machine>` and joins the target's. Every other byte stays as the
//! operator's file had it (quotes, self-closing form, indentation, line endings, comments).
//!
//! The result is re-parsed before it is returned, and each moved guest must then have exactly
//! one parent, the target (es-xml.md §7 pitfall 6: a guest listed by two hosts is corruption).

use std::collections::HashSet;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::error::{EsXmlError, EsXmlErrorKind, Location, machine_element};
use super::layout::{EsLayout, GuestRefSpan, HostLayout};
use super::model::{EsGuest, EsSystem};
use super::parse::{parse, parse_with_layout};
use crate::inventory::fast_hash::{FastMap as IdMap, map_with_capacity as id_map};

/// One guest changing hosts, by es.xml machine ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GuestMove {
    pub guest_id: String,
    pub from_host_id: String,
    pub to_host_id: String,
}

/// [`move_guests_in`] with errors attributed to `es.xml`.
pub fn move_guests(text: &str, moves: &[GuestMove]) -> Result<String, EsXmlError> {
    move_guests_in("es.xml", text, moves)
}

/// Applies `moves` to the es.xml `text` (named `source_name` in errors) and returns the new text.
/// Refuses moves that do not match the file (unknown guest or host, guest not on the source
/// host, a guest moved twice, a move onto the same host); nothing is changed then.
pub fn move_guests_in(
    source_name: &str,
    text: &str,
    moves: &[GuestMove],
) -> Result<String, EsXmlError> {
    let (system, layout) = parse_with_layout(source_name, text)?;
    move_guests_parsed(source_name, text, &system, &layout, moves)
}

/// [`move_guests_in`] for a text already parsed into `system` and `layout` (by
/// [`parse_with_layout`](super::parse_with_layout)): the result is still re-parsed and checked.
pub fn move_guests_parsed(
    source_name: &str,
    text: &str,
    system: &EsSystem,
    layout: &EsLayout,
    moves: &[GuestMove],
) -> Result<String, EsXmlError> {
    let edits = guest_move_edits(source_name, text, system, layout, moves)?;
    let rewritten = apply(text, &edits);
    verify(source_name, &rewritten, moves)?;
    Ok(rewritten)
}

/// One replacement in the es.xml text: `range` (empty for an insertion) becomes `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextEdit {
    pub range: Range<usize>,
    pub text: String,
}

/// The edits [`move_guests_parsed`] makes, checked against the file but not applied: sorted by
/// position, not overlapping, an insertion before a deletion that starts at the same place.
/// For previews (the plan's es.xml diff), where re-parsing the whole result would cost a
/// second parse of a file that may hold 100,000 guests; the rewrite that is written re-parses.
pub fn guest_move_edits(
    source_name: &str,
    text: &str,
    system: &EsSystem,
    layout: &EsLayout,
    moves: &[GuestMove],
) -> Result<Vec<TextEdit>, EsXmlError> {
    let mut edits = Vec::with_capacity(moves.len() * 2);
    let checked = check_moves(source_name, text, system, layout, moves)?;
    let removed: HashSet<&str> = moves.iter().map(|m| m.guest_id.as_str()).collect();
    for (m, reference) in moves.iter().zip(&checked) {
        edits.push(TextEdit {
            range: removal_range(text, &reference.span),
            text: String::new(),
        });
        let target = &layout.hosts[&m.to_host_id];
        edits.push(insertion(
            source_name,
            text,
            target,
            &m.to_host_id,
            &removed,
            &text[reference.span.clone()],
        )?);
    }
    // Inserts before a deletion that starts at the same place (the inserted line goes above the
    // removed one); the sort is stable, so several inserts at one place keep the moves' order.
    edits.sort_by_key(|e| (e.range.start, !e.range.is_empty()));
    Ok(edits)
}

/// Checks every move against the parsed file; returns each moved guest's reference.
fn check_moves<'l>(
    source_name: &str,
    text: &str,
    system: &EsSystem,
    layout: &'l EsLayout,
    moves: &[GuestMove],
) -> Result<Vec<&'l GuestRefSpan>, EsXmlError> {
    let failure = |offset: Option<usize>, element: String, kind| {
        EsXmlError::new(
            source_name,
            offset.map(|o| Location::of(text, o)),
            element,
            kind,
        )
    };
    let mut seen = HashSet::new();
    let mut references = Vec::with_capacity(moves.len());
    let guests = guests_by_id(system);
    for m in moves {
        let guest = m.guest_id.clone();
        let Some(es_guest) = guests.get(m.guest_id.as_str()) else {
            return Err(failure(
                None,
                String::new(),
                EsXmlErrorKind::MoveUnknownGuest { guest },
            ));
        };
        if !seen.insert(m.guest_id.as_str()) {
            return Err(failure(
                None,
                machine_element(&guest),
                EsXmlErrorKind::MovedTwice { guest },
            ));
        }
        for host in [&m.from_host_id, &m.to_host_id] {
            if !layout.hosts.contains_key(host) {
                let kind = EsXmlErrorKind::MoveUnknownHost {
                    guest,
                    host: host.clone(),
                };
                return Err(failure(None, machine_element(&m.guest_id), kind));
            }
        }
        let current = &layout.hosts[&es_guest.host_id];
        let reference = current.guest_refs.iter().find(|r| r.guest_id == m.guest_id);
        let Some(reference) = reference else {
            // parse_with_layout records every reference it resolves a parent from.
            return Err(failure(
                None,
                machine_element(&guest),
                EsXmlErrorKind::RewriteCheck("guest reference not found".into()),
            ));
        };
        let at = Some(reference.span.start);
        if es_guest.host_id != m.from_host_id {
            let kind = EsXmlErrorKind::MoveWrongSource {
                guest,
                expected: m.from_host_id.clone(),
                actual: es_guest.host_id.clone(),
            };
            return Err(failure(at, machine_element(&es_guest.host_id), kind));
        }
        if m.from_host_id == m.to_host_id {
            let kind = EsXmlErrorKind::MoveToSameHost {
                guest,
                host: m.to_host_id.clone(),
            };
            return Err(failure(at, machine_element(&m.to_host_id), kind));
        }
        references.push(reference);
    }
    Ok(references)
}

/// Applies sorted, non-overlapping edits in one forward pass.
fn apply(text: &str, edits: &[TextEdit]) -> String {
    let mut out = String::with_capacity(text.len() + 256);
    let mut cursor = 0;
    for edit in edits {
        out.push_str(&text[cursor..edit.range.start]);
        out.push_str(&edit.text);
        cursor = edit.range.end;
    }
    out.push_str(&text[cursor..]);
    out
}

/// The reference's whole line when it stands alone on it, else just the element.
fn removal_range(text: &str, span: &Range<usize>) -> Range<usize> {
    if alone_on_line(text, span) {
        line_start(text, span.start)..line_end(text, span.end)
    } else {
        span.clone()
    }
}

/// Where and how the moved reference `raw` goes into `target`: after its last guest reference
/// that stays, in that sibling's indentation, or else just before the host's end tag.
fn insertion(
    source_name: &str,
    text: &str,
    target: &HostLayout,
    target_id: &str,
    removed: &HashSet<&str>,
    raw: &str,
) -> Result<TextEdit, EsXmlError> {
    let staying = target
        .guest_refs
        .iter()
        .rev()
        .find(|r| !removed.contains(r.guest_id.as_str()));
    if let Some(sibling) = staying {
        let span = &sibling.span;
        if alone_on_line(text, span) && line_end(text, span.end) > span.end {
            let at = line_end(text, span.end);
            return Ok(insert(
                at,
                format!(
                    "{}{raw}{}",
                    indentation(text, span.start),
                    line_ending(text, at)
                ),
            ));
        }
        return Ok(insert(span.end, raw.to_string()));
    }
    let Some(end_tag) = &target.end_tag else {
        let kind = EsXmlErrorKind::RewriteCheck(
            "the target host <machine> is self-closing and cannot hold guests".into(),
        );
        let location = Some(Location::of(text, target.start_tag.start));
        return Err(EsXmlError::new(
            source_name,
            location,
            machine_element(target_id),
            kind,
        ));
    };
    let close = end_tag.start;
    if !starts_its_line(text, close) {
        return Ok(insert(close, raw.to_string()));
    }
    let indent = match target.last_child_start {
        Some(child) if starts_its_line(text, child) => indentation(text, child).to_string(),
        _ => {
            let outer = indentation(text, close);
            format!(
                "{outer}{}",
                if outer.contains('\t') { "\t" } else { "    " }
            )
        }
    };
    let at = line_start(text, close);
    Ok(insert(
        at,
        format!("{indent}{raw}{}", line_ending(text, at)),
    ))
}

fn insert(at: usize, text: String) -> TextEdit {
    TextEdit {
        range: at..at,
        text,
    }
}

fn verify(source_name: &str, rewritten: &str, moves: &[GuestMove]) -> Result<(), EsXmlError> {
    let check_failed = |message: String| {
        EsXmlError::new(
            source_name,
            None,
            String::new(),
            EsXmlErrorKind::RewriteCheck(message),
        )
    };
    let system = parse(source_name, rewritten).map_err(|e| check_failed(e.to_string()))?;
    let guests = guests_by_id(&system);
    for m in moves {
        let parent = guests.get(m.guest_id.as_str()).map(|g| g.host_id.as_str());
        if parent != Some(m.to_host_id.as_str()) {
            return Err(check_failed(format!(
                "guest \"{}\" is not under host \"{}\" afterwards",
                m.guest_id, m.to_host_id
            )));
        }
    }
    Ok(())
}

fn guests_by_id(system: &EsSystem) -> IdMap<&str, &EsGuest> {
    let mut guests = id_map(system.guests.len());
    guests.extend(system.guests.iter().map(|g| (g.id.as_str(), g)));
    guests
}

fn line_start(text: &str, pos: usize) -> usize {
    text[..pos].rfind('\n').map_or(0, |i| i + 1)
}

/// Just after the `\n` ending the line that holds `pos` (or the end of the text).
fn line_end(text: &str, pos: usize) -> usize {
    text[pos..].find('\n').map_or(text.len(), |i| pos + i + 1)
}

fn starts_its_line(text: &str, pos: usize) -> bool {
    text[line_start(text, pos)..pos]
        .bytes()
        .all(|b| b == b' ' || b == b'\t')
}

fn alone_on_line(text: &str, span: &Range<usize>) -> bool {
    let rest = &text[span.end..line_end(text, span.end)];
    starts_its_line(text, span.start)
        && rest
            .bytes()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn indentation(text: &str, pos: usize) -> &str {
    &text[line_start(text, pos)..pos]
}

/// The line ending the file uses just before `line_start` (`\r\n` or `\n`).
fn line_ending(text: &str, line_start: usize) -> &'static str {
    if text[..line_start].ends_with("\r\n") {
        "\r\n"
    } else {
        "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE_HOSTS: &str = r#"<engineeredSystem>
  <machines>
    <machine id="h1">
      <hostName>h1</hostName>
      <osType>LinuxKVM</osType>
      <machine id="g1"/>
      <machine id='g2'></machine>
    </machine>
    <machine id="h2"><hostName>h2</hostName><osType>LinuxKVM</osType><machine id="g3"/></machine>
    <machine id="h3">
      <hostName>h3</hostName>
      <osType>LinuxKVM</osType>
    </machine>
    <machine id="g1"><hostName>g1</hostName><osType>LinuxKVMGuest</osType></machine>
    <machine id="g2"><hostName>g2</hostName><osType>LinuxKVMGuest</osType></machine>
    <machine id="g3"><hostName>g3</hostName><osType>LinuxKVMGuest</osType></machine>
  </machines>
</engineeredSystem>
"#;

    fn mv(guest: &str, from: &str, to: &str) -> GuestMove {
        GuestMove {
            guest_id: guest.into(),
            from_host_id: from.into(),
            to_host_id: to.into(),
        }
    }

    fn parents(text: &str) -> Vec<(String, String)> {
        parse("t", text)
            .unwrap()
            .guests
            .into_iter()
            .map(|g| (g.id, g.host_id))
            .collect()
    }

    #[test]
    fn moves_into_a_host_without_guests_use_the_childrens_indentation() {
        let out = move_guests(THREE_HOSTS, &[mv("g2", "h1", "h3")]).unwrap();
        assert!(
            out.contains(
                "      <osType>LinuxKVM</osType>\n      <machine id='g2'></machine>\n    </machine>"
            ),
            "{out}"
        );
        assert!(
            out.contains("      <machine id=\"g1\"/>\n    </machine>"),
            "{out}"
        );
        assert_eq!(out.len(), THREE_HOSTS.len());
    }

    #[test]
    fn single_line_hosts_are_edited_in_place() {
        let out = move_guests(THREE_HOSTS, &[mv("g3", "h2", "h1"), mv("g1", "h1", "h2")]).unwrap();
        assert!(
            out.contains(r#"<osType>LinuxKVM</osType><machine id="g1"/></machine>"#),
            "{out}"
        );
        assert!(
            out.contains(
                "      <machine id='g2'></machine>\n      <machine id=\"g3\"/>\n    </machine>"
            ),
            "{out}"
        );
        let p = parents(&out);
        assert_eq!(
            p,
            [
                ("g1".into(), "h2".into()),
                ("g2".into(), "h1".into()),
                ("g3".into(), "h1".into())
            ]
        );
    }

    #[test]
    fn moving_every_guest_off_a_host_leaves_it_empty() {
        let out = move_guests(THREE_HOSTS, &[mv("g1", "h1", "h3"), mv("g2", "h1", "h3")]).unwrap();
        assert!(
            out.contains("<osType>LinuxKVM</osType>\n    </machine>\n    <machine id=\"h2\">"),
            "{out}"
        );
        assert!(out.contains("      <machine id=\"g1\"/>\n      <machine id='g2'></machine>\n    </machine>\n    <machine id=\"g1\">"), "{out}");
    }

    #[test]
    fn crlf_files_keep_crlf() {
        let crlf = THREE_HOSTS.replace('\n', "\r\n");
        let out = move_guests(&crlf, &[mv("g1", "h1", "h3")]).unwrap();
        assert!(
            !out.replace("\r\n", "").contains('\n'),
            "a bare LF crept in"
        );
        assert!(
            out.contains(
                "<osType>LinuxKVM</osType>\r\n      <machine id=\"g1\"/>\r\n    </machine>"
            ),
            "{out}"
        );
    }

    #[test]
    fn an_empty_move_list_changes_nothing() {
        assert_eq!(move_guests(THREE_HOSTS, &[]).unwrap(), THREE_HOSTS);
    }

    #[test]
    fn refuses_moves_that_do_not_match_the_file() {
        let cases = [
            (
                vec![mv("g9", "h1", "h2")],
                "no KVM guest with that machine id",
            ),
            (
                vec![mv("g1", "h1", "h9")],
                "no KVM host with machine id \"h9\"",
            ),
            (
                vec![mv("g1", "h2", "h3")],
                "it is on host \"h1\", not on \"h2\"",
            ),
            (
                vec![mv("g1", "h1", "h1")],
                "source and target are the same host",
            ),
            (
                vec![mv("g1", "h1", "h2"), mv("g1", "h2", "h3")],
                "moved more than once",
            ),
        ];
        for (moves, expected) in cases {
            let err = move_guests(THREE_HOSTS, &moves).unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
        let wrong_source = move_guests(THREE_HOSTS, &[mv("g1", "h2", "h3")]).unwrap_err();
        assert_eq!(wrong_source.line(), Some(6));
    }
}
