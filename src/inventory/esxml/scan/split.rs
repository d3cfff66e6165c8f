//! Scanning a large es.xml in two halves, one per core.
//!
//! A single quick-xml pass over a 10,000-host es.xml (200 MiB) takes most of a second, which
//! alone would use a quarter of a plan's time budget. The halves are split between two
//! sibling list items (`</machine>` followed by `<machine …>`, or the same for `network`,
//! `cluster`, `edvVolume`), and the second half is scanned as if inside that list
//! (e.g. `<engineeredSystem><machines>`), at the same time as the first.
//!
//! The split point is found by looking at the text only, so it is a guess: a `</machine>` may
//! close a guest reference inside a host, or sit in a comment. The guess is verified when the
//! halves are joined: the first half must end exactly on that end tag with exactly the guessed
//! elements open, the end tags in the second half that close them must match their start tags,
//! and both halves must scan without error. If anything is off, or either half fails, the
//! whole file is scanned again in one pass, so results and errors (with their line and
//! column) are always those of the sequential scan; only the time differs.

use super::{RawDocument, Scanner, Tag};
use crate::inventory::esxml::position::LineCounter;

/// Smaller files are scanned in one pass: a second thread costs more than it saves.
const MIN_SPLIT_LEN: usize = 4 << 20;

/// How far past its target a split point is looked for before giving up.
const SEARCH_WINDOW: usize = 1 << 20;

/// A list whose items are a good place to split: the end tag of an item, the start tag that
/// must follow it, and the elements open between two items.
struct ListItem {
    end_tag: &'static str,
    name: &'static str,
    context: &'static [Tag],
}

const LIST_ITEMS: [ListItem; 4] = [
    ListItem {
        end_tag: "</machine>",
        name: "machine",
        context: &[Tag::Root, Tag::Machines],
    },
    ListItem {
        end_tag: "</network>",
        name: "network",
        context: &[Tag::Root, Tag::Networks],
    },
    ListItem {
        end_tag: "</cluster>",
        name: "cluster",
        context: &[Tag::Root, Tag::Software, Tag::Clusters],
    },
    ListItem {
        end_tag: "</edvVolume>",
        name: "edvVolume",
        context: &[Tag::Root, Tag::Storage, Tag::EdvVolumes],
    },
];

/// Where to split `text` in [`super::Split::Auto`] mode, or `None` to scan in one pass.
/// Slightly before the middle: `<machines>`, at the start of the file, holds more of the
/// elements berth reads per byte than the lists after it (measured on the 10,000-host
/// benchmark file, the first half otherwise takes about a third longer).
pub(super) fn auto_target(text: &str) -> Option<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (text.len() >= MIN_SPLIT_LEN && cores > 1).then_some(text.len() / 100 * 44)
}

/// Scans `text` in two halves split near `target`; `None` when no split point was found or
/// the split did not hold up (see the module documentation): the caller then scans in one pass.
pub(super) fn scan_in_two<'a>(
    source_name: &'a str,
    text: &'a str,
    target: usize,
) -> Option<RawDocument<'a>> {
    let (at, context) = find_split(text, target)?;
    std::thread::scope(|s| {
        let second = s.spawn(move || scan_second(source_name, text, at, context));
        let mut first = Scanner::new(source_name, text, &[]);
        let first_ended_at_split = matches!(first.run(0..at, false), Ok(Some(end)) if end == at);
        // A panic in the second half is a bug, not an input error: scan again in one pass
        // rather than crash.
        let second = second.join().ok().flatten()?;
        first_ended_at_split.then(|| join(first, at, context, second))?
    })
}

/// The second half, scanned to the end of the file from inside `context`.
fn scan_second<'a>(
    source_name: &'a str,
    text: &'a str,
    at: usize,
    context: &[Tag],
) -> Option<(RawDocument<'a>, Vec<usize>)> {
    let mut scanner = Scanner::new(source_name, text, context);
    // Lines counted from the split point; shifted when the first half knows its line.
    scanner.lines = LineCounter::starting_at(at);
    scanner.run(at..text.len(), true).ok()?;
    let unmatched_ends = std::mem::take(&mut scanner.unmatched_ends);
    let doc = scanner.finish().ok()?;
    Some((doc, unmatched_ends))
}

/// The whole document from the two halves, if the first half ended in the state the second
/// half assumed.
fn join<'a>(
    first: Scanner<'a>,
    at: usize,
    context: &[Tag],
    (second, unmatched_ends): (RawDocument<'a>, Vec<usize>),
) -> Option<RawDocument<'a>> {
    let Scanner {
        text,
        tags,
        starts,
        capture,
        machine,
        pending_ref,
        network,
        cluster,
        volume,
        mut lines,
        mut doc,
        ..
    } = first;
    let between_items = tags == context
        && capture.is_none()
        && machine.is_none()
        && pending_ref.is_none()
        && network.is_none()
        && cluster.is_none()
        && volume.is_none();
    // quick-xml checks each end tag against its start tag; for the elements open at the split
    // the second half's reader could not, so check here (innermost first).
    let ends_match = unmatched_ends.len() == starts.len()
        && unmatched_ends
            .iter()
            .zip(starts.iter().rev())
            .all(|(&end, &start)| end_tag_name(text, end) == start_tag_name(text, start));
    if !between_items || !ends_match {
        return None;
    }
    let RawDocument {
        root_offset: _,
        oeda_version: _,
        customer_name,
        mut machines,
        networks,
        clusters,
        volumes,
    } = second;
    if customer_name.is_some() {
        if doc.customer_name.is_some() {
            return None; // a duplicate: the sequential scan reports it
        }
        doc.customer_name = customer_name;
    }
    if !machines.is_empty() {
        let shift = lines.line_at(text, at) - 1;
        for m in machines.iter_mut() {
            m.line += shift;
        }
    }
    doc.machines.append(machines);
    doc.networks.append(networks);
    doc.clusters.append(clusters);
    doc.volumes.append(volumes);
    Some(doc)
}

/// The first place at or after `target` (within [`SEARCH_WINDOW`]) where one list item ends
/// and the next begins: the offset just after the end tag, and the elements open there if it
/// is what it looks like.
fn find_split(text: &str, target: usize) -> Option<(usize, &'static [Tag])> {
    let bytes = text.as_bytes();
    let end = target.saturating_add(SEARCH_WINDOW).min(bytes.len());
    let mut at = target.min(end);
    while let Some(found) = bytes[at..end].windows(2).position(|w| w == b"</") {
        let tag_at = at + found;
        for item in &LIST_ITEMS {
            if bytes[tag_at..].starts_with(item.end_tag.as_bytes()) {
                let after = tag_at + item.end_tag.len();
                if starts_element(&bytes[skip_whitespace(bytes, after)..], item.name) {
                    return Some((after, item.context));
                }
            }
        }
        at = tag_at + 2;
    }
    None
}

fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(|b| is_xml_whitespace(*b)) {
        at += 1;
    }
    at
}

fn is_xml_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Whether `rest` begins with a start tag `<name` (followed by whitespace, `>` or `/`).
fn starts_element(rest: &[u8], name: &str) -> bool {
    rest.strip_prefix(b"<")
        .and_then(|r| r.strip_prefix(name.as_bytes()))
        .and_then(|r| r.first())
        .is_some_and(|&b| is_xml_whitespace(b) || b == b'>' || b == b'/')
}

/// The name of the start tag whose `<` is at `offset`, as quick-xml compares it with end
/// tags: up to the first whitespace or `>`.
fn start_tag_name(text: &str, offset: usize) -> &[u8] {
    let rest = text.as_bytes().get(offset + 1..).unwrap_or_default();
    let len = rest
        .iter()
        .position(|&b| is_xml_whitespace(b) || b == b'>')
        .unwrap_or(rest.len());
    &rest[..len]
}

/// The name of the end tag whose `<` is at `offset` (`</name  >` → `name`).
fn end_tag_name(text: &str, offset: usize) -> &[u8] {
    let rest = text.as_bytes().get(offset + 2..).unwrap_or_default();
    let len = rest.iter().position(|&b| b == b'>').unwrap_or(rest.len());
    let name = &rest[..len];
    let trimmed = name
        .iter()
        .rposition(|&b| !is_xml_whitespace(b))
        .map_or(0, |last| last + 1);
    &name[..trimmed]
}

#[cfg(test)]
mod tests {
    use super::super::{Split, scan_with};
    use super::*;
    use crate::inventory::esxml::parse::parse_with_split;
    use crate::inventory::esxml::{Location, SynthSpec, synthesize};

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/../shared/oeda-fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Whether a split near `target` holds up (rather than falling back to one pass).
    fn splits(text: &str, target: usize) -> bool {
        scan_in_two("es.xml", text, target).is_some()
    }

    /// The parse with the scan split near `target` equals the one-pass parse: system, layout,
    /// or error with its line and column.
    fn assert_same_as_sequential(text: &str, target: usize) {
        let split = parse_with_split("es.xml", text, Split::Near(target));
        let sequential = parse_with_split("es.xml", text, Split::Never);
        assert_eq!(split, sequential, "split near byte {target}");
    }

    /// Targets spread over the whole text, so that each list (machines, networks, clusters,
    /// volumes) gets split somewhere.
    fn targets(text: &str) -> impl Iterator<Item = usize> {
        let step = (text.len() / 23).max(1);
        (0..text.len()).step_by(step)
    }

    #[test]
    fn split_parse_equals_sequential_on_the_oeda_fixtures() {
        for name in [
            "clusterless.xml",
            "elastic_sample.xml",
            "fullrack.xml",
            "ipv6_sample.xml",
            "kvm_guest.xml",
            "minimal.xml",
        ] {
            let text = fixture(name);
            let mut held = 0;
            for target in targets(&text) {
                assert_same_as_sequential(&text, target);
                held += usize::from(splits(&text, target));
            }
            // A file the scan refuses (Xen) never splits: each half must scan without error.
            let scans = scan_with("es.xml", &text, Split::Never).is_ok();
            assert_eq!(held > 0, scans, "{name}: {held} splits held up");
        }
    }

    #[test]
    fn split_parse_equals_sequential_on_synthetic_files() {
        for namespace in [true, false] {
            let spec = SynthSpec {
                namespace,
                volumes_per_guest: 2,
                ..SynthSpec::new(9, 3, 5)
            };
            let text = synthesize(&spec);
            let lists = ["</machine>", "</network>", "</cluster>", "</edvVolume>"];
            for end_tag in lists {
                // Just before the middle item of each list: the split must hold there.
                let all: Vec<usize> = text.match_indices(end_tag).map(|(i, _)| i).collect();
                let target = all[all.len() / 2];
                assert!(splits(&text, target), "{end_tag}: the split fell back");
                assert_same_as_sequential(&text, target);
            }
            for target in targets(&text) {
                assert_same_as_sequential(&text, target);
            }
        }
    }

    /// A small file with one error placed after the middle of its `<machines>`.
    fn synthetic_with(edit: impl Fn(&str) -> String) -> String {
        edit(&synthesize(&SynthSpec::new(6, 2, 3)))
    }

    fn middle_machine_end(text: &str) -> usize {
        let ends: Vec<usize> = text.match_indices("</machine>").map(|(i, _)| i).collect();
        ends[ends.len() / 2]
    }

    #[test]
    fn malformed_xml_in_the_second_half_is_reported_where_it_is() {
        let text = synthetic_with(|t| {
            let at = t.rfind("</clusterName>").unwrap();
            format!(
                "{}</clustername>{}",
                &t[..at],
                &t[at + "</clusterName>".len()..]
            )
        });
        let at = text.rfind("</clustername>").unwrap();
        let err =
            parse_with_split("es.xml", &text, Split::Near(middle_machine_end(&text))).unwrap_err();
        assert_eq!(err.location, Some(Location::of(&text, at)));
        assert!(err.to_string().contains("clustername"), "{err}");
        assert_same_as_sequential(&text, middle_machine_end(&text));
    }

    #[test]
    fn a_bad_value_in_the_second_half_is_reported_at_its_line() {
        let text = synthetic_with(|t| {
            let at = t.rfind("<guestMemory>").unwrap();
            let end = t[at..].find("</guestMemory>").unwrap() + at;
            format!("{}<guestMemory>lots{}", &t[..at], &t[end..])
        });
        let target = middle_machine_end(&text);
        let at = text.rfind("<guestMemory>").unwrap();
        assert!(at > target, "the error must lie in the second half");
        assert!(
            splits(&text, target),
            "a resolve error does not stop the split"
        );
        let err = parse_with_split("es.xml", &text, Split::Near(target)).unwrap_err();
        assert_eq!(err.location, Some(Location::of(&text, at)));
        assert_same_as_sequential(&text, target);
    }

    #[test]
    fn an_error_in_the_first_half_wins_over_one_in_the_second() {
        let text = synthetic_with(|t| {
            let first = t.find("</hostName>").unwrap();
            let last = t.rfind("</networkType>").unwrap();
            format!(
                "{}</hostname>{}</networktype>{}",
                &t[..first],
                &t[first + "</hostName>".len()..last],
                &t[last + "</networkType>".len()..]
            )
        });
        let err =
            parse_with_split("es.xml", &text, Split::Near(middle_machine_end(&text))).unwrap_err();
        let first = text.find("</hostname>").unwrap();
        assert_eq!(err.location, Some(Location::of(&text, first)), "{err}");
        assert_same_as_sequential(&text, middle_machine_end(&text));
    }

    #[test]
    fn a_mismatched_end_of_an_element_open_at_the_split_falls_back() {
        let text = synthetic_with(|t| t.replace("</machines>", "</machinez>"));
        let target = middle_machine_end(&text);
        assert!(!splits(&text, target));
        let err = parse_with_split("es.xml", &text, Split::Near(target)).unwrap_err();
        let at = text.find("</machinez>").unwrap();
        assert_eq!(err.location, Some(Location::of(&text, at)));
        assert_same_as_sequential(&text, target);
    }

    #[test]
    fn a_split_at_a_nested_end_tag_is_caught_and_falls_back() {
        // Guest references written with end tags look like the end of a top-level machine.
        let text = synthetic_with(|t| {
            t.lines()
                .map(|l| match l.trim_start().starts_with("<machine id=") {
                    true => l.replace("_id\" />", "_id\"></machine>"),
                    false => l.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n")
        });
        let first_ref = text.find("\"></machine>").unwrap();
        assert!(!splits(&text, first_ref));
        assert_same_as_sequential(&text, first_ref);
        assert!(parse_with_split("es.xml", &text, Split::Near(first_ref)).is_ok());
    }

    #[test]
    fn a_split_inside_a_comment_falls_back() {
        let text = synthetic_with(|t| {
            let at = middle_machine_end(t);
            format!(
                "{}<!-- </machine>\n<machine id=\"x\"> -->{}",
                &t[..at],
                &t[at..]
            )
        });
        let target = text.find("<!--").unwrap();
        assert!(!splits(&text, target));
        assert_same_as_sequential(&text, target);
    }

    #[test]
    fn customer_name_after_the_split_is_kept_and_a_second_one_refused() {
        let moved = synthetic_with(|t| {
            let start = t.find("<customerName>").unwrap();
            let end = t.find("</customerName>").unwrap() + "</customerName>".len();
            let name = &t[start..end];
            let without = format!("{}{}", &t[..start], &t[end..]);
            without.replace("</machines>", &format!("</machines>\n{name}"))
        });
        let target = middle_machine_end(&moved);
        assert!(splits(&moved, target));
        let (es, _) = parse_with_split("es.xml", &moved, Split::Near(target)).unwrap();
        assert_eq!(es.customer_name.as_deref(), Some("berth synthetic seed 3"));
        assert_same_as_sequential(&moved, target);

        let twice = synthetic_with(|t| {
            t.replace("</machines>", "</machines>\n<customerName>x</customerName>")
        });
        assert!(!splits(&twice, middle_machine_end(&twice)));
        assert_same_as_sequential(&twice, middle_machine_end(&twice));
    }

    #[test]
    fn tag_names_are_read_as_quick_xml_compares_them() {
        let text = "<model:machines a=\"1\"></model:machines \n>";
        assert_eq!(start_tag_name(text, 0), b"model:machines");
        let end = text.find("</").unwrap();
        assert_eq!(end_tag_name(text, end), b"model:machines");
        assert_eq!(start_tag_name("<a>", 0), b"a");
    }

    #[test]
    fn large_files_are_split_when_there_is_a_second_core() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let large = " ".repeat(MIN_SPLIT_LEN);
        assert_eq!(auto_target(&large).is_some(), cores > 1);
        assert!(auto_target(&large).is_none_or(|t| t > 0 && t < large.len()));
    }

    #[test]
    fn small_files_are_scanned_in_one_pass() {
        assert_eq!(auto_target(&"x".repeat(1000)), None);
        let text = synthesize(&SynthSpec::new(2, 1, 1));
        assert!(scan_with("es.xml", &text, Split::Auto).is_ok());
    }
}
