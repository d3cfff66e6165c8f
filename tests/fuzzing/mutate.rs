//! Mutations: generic byte edits plus edits that know the syntax of the input (XML elements and
//! attributes, HCL blocks, attributes and expressions, JSON values), so that mutated inputs get
//! past the tokenizer and reach the checks behind it.
//!
//! Every mutation works on bytes and never fails: when the structure it looks for is not
//! there, it falls back to a byte edit.

use std::ops::Range;

use super::rng::Rng;

/// The syntax an input is written in, which picks the structure-aware mutations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Xml,
    Hcl,
    Json,
}

/// Numbers that sit on edges: zero, signs, the limits of the integer types, overflow, floats,
/// exponents and forms a number parser may or may not accept.
const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "2",
    "255",
    "256",
    "-129",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "99999999999999999999999999999999999999999999999999",
    "1e308",
    "1e309",
    "-1e309",
    "2.5e-324",
    "0.5",
    "1.0",
    "1.",
    ".5",
    "1e",
    "0x10",
    "0o17",
    "1_000",
    "01",
    "+1",
    "NaN",
    "inf",
    "-inf",
    "1GiB",
    "0GiB",
    "-1GiB",
    "1.5GiB",
    "16777216TiB",
    "18446744073709551615KiB",
    "999999999999999999999PiB",
    "1 GB",
    "1gib",
    "GiB",
];

/// Byte sequences that are not UTF-8: a lone continuation byte, an overlong encoding, a UTF-16
/// surrogate, a code point past U+10FFFF, a truncated sequence, and bytes never used.
const INVALID_UTF8: &[&[u8]] = &[
    b"\x80",
    b"\xc0\x80",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xe2\x82",
    b"\xff",
    b"\xfe\xff",
];

/// Valid but awkward text: multi-byte characters (byte and character offsets differ), a BOM,
/// control characters, right-to-left marks, combining marks and very long words.
const AWKWARD_TEXT: &[&str] = &[
    "é",
    "日本語",
    "😀",
    "\u{feff}",
    "\u{0}",
    "\u{7}",
    "\r",
    "\r\n",
    "\t",
    "\u{202e}",
    "e\u{301}",
    " ",
    "",
    "\u{2028}",
    "\\",
    "\"",
    "'",
    "$",
    "%",
    "{",
    "}",
    "<",
    ">",
    "&",
    ";",
    "../../etc/passwd",
    "a/b?c=d&e#f",
    "-oProxyCommand=x",
];

const XML_MARKUP: &[&str] = &[
    "<!-- comment -->",
    "<!-- unterminated",
    "<![CDATA[<machine id=\"x\"/>]]>",
    "<![CDATA[",
    "<?pi data?>",
    "<?xml version=\"1.0\"?>",
    "<!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">]>",
    "<!DOCTYPE x SYSTEM \"file:///etc/passwd\">",
    "<!ENTITY x SYSTEM \"file:///dev/zero\">",
    "&amp;",
    "&lt;",
    "&#x0;",
    "&#0;",
    "&#1114112;",
    "&#xD800;",
    "&#99999999999999999999;",
    "&#x;",
    "&unknown;",
    "&b;",
    "&",
    "&amp",
    "<",
    ">",
    "</>",
    "<>",
    "</machine>",
    "<machine>",
    "<machine id=\"\"/>",
    "<machine id='x' id='x'/>",
    "<a:b xmlns:a=\"urn:x\"/>",
    "<x/>",
    "\u{feff}",
];

const HCL_EXPRESSIONS: &[&str] = &[
    "\"\"",
    "\"${var.x}\"",
    "\"${\"",
    "\"$${x}\"",
    "\"%{ if true }a%{ else }b%{ endif }\"",
    "\"%{ for x in [1,2] }${x}%{ endfor }\"",
    "\"%{\"",
    "\"\\u0000\"",
    "\"\\uD800\"",
    "\"\\U0010FFFF\"",
    "\"\\U00110000\"",
    "\"\\q\"",
    "\"unterminated",
    "<<EOT\nline one\nEOT\n",
    "<<-EOT\n    indented\n    EOT\n",
    "<<EOT\nnever closed\n",
    "<<EOT\n${x}\nEOT\n",
    "<<\n",
    "true",
    "false",
    "null",
    "[]",
    "[1, \"a\", true, null]",
    "[[[[[[[[[[]]]]]]]]]]",
    "{}",
    "{ a = 1, b = \"x\" }",
    "{ a = 1 a = 2 }",
    "[for x in [1, 2] : x]",
    "{for k, v in {a = 1} : k => v}",
    "a.*.b",
    "a[*]",
    "a[0]",
    "a.b.c",
    "x ? 1 : 2",
    "!true",
    "-1",
    "1 + 2 * 3",
    "1 / 0",
    "\"a\" + 1",
    "max(1, 2)",
    "file(\"/etc/passwd\")",
    "f(",
    "(",
    ")",
    "...",
    "=",
    "==",
    "# comment\n",
    "// comment\n",
    "/* comment */",
    "/* unterminated",
];

const JSON_STRINGS: &[&str] = &[
    "",
    "x",
    "2026-12-03T13:30:00Z",
    "2026-13-45T99:99:99Z",
    "9999-12-31T23:59:59.999999999+14:00",
    "0000-00-00T00:00:00Z",
    "not a date",
    "00000000-0000-0000-0000-000000000000",
    "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
    "running",
    "shut_off",
    "done",
    "MIGRATE_GUEST",
    "STOP_GUEST",
    "\u{0}",
    "\u{feff}",
    "😀",
    "\\",
    "../../x",
];

/// Tokens taken from the seeds (element, attribute, block and key names), used to rename and
/// insert things the reader knows.
#[derive(Debug, Default, Clone)]
pub struct Dictionary {
    words: Vec<String>,
}

impl Dictionary {
    pub fn from_seeds<'a>(seeds: impl IntoIterator<Item = &'a [u8]>) -> Dictionary {
        let mut words = std::collections::BTreeSet::new();
        for seed in seeds {
            let mut start = None;
            for (i, &b) in seed.iter().chain(std::iter::once(&b' ')).enumerate() {
                let word_byte = b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
                match (start, word_byte) {
                    (None, true) if b.is_ascii_alphabetic() || b == b'_' => start = Some(i),
                    (Some(s), false) => {
                        if (2..=40).contains(&(i - s)) {
                            words.insert(String::from_utf8_lossy(&seed[s..i]).into_owned());
                        }
                        start = None;
                    }
                    _ => {}
                }
            }
            if words.len() > 4000 {
                break;
            }
        }
        Dictionary {
            words: words.into_iter().collect(),
        }
    }

    fn word<'a>(&'a self, rng: &mut Rng) -> &'a str {
        if self.words.is_empty() {
            "x"
        } else {
            &self.words[rng.below(self.words.len())]
        }
    }
}

/// Applies one to several mutations to `data`, in place. `donor` is another input of the same
/// target, for splicing.
pub fn mutate(data: &mut Vec<u8>, syntax: Syntax, dict: &Dictionary, donor: &[u8], rng: &mut Rng) {
    let rounds = 1 + rng.small_len(7);
    for _ in 0..rounds {
        // Mostly structure-aware; a quarter of the edits ignore the syntax altogether.
        if rng.below(4) == 0 {
            bytes(data, dict, donor, rng);
        } else {
            match syntax {
                Syntax::Xml => xml(data, dict, donor, rng),
                Syntax::Hcl => hcl(data, dict, donor, rng),
                Syntax::Json => json(data, dict, donor, rng),
            }
        }
    }
    // Keep inputs bounded so that one run does not spend its time copying megabytes: four
    // times the largest real es.xml (the 1 MB full rack), 1 MiB of HCL (real ones are a few
    // KiB).
    data.truncate(match syntax {
        Syntax::Hcl => 1 << 20,
        Syntax::Xml | Syntax::Json => 4 << 20,
    });
}

fn splice(data: &mut Vec<u8>, at: Range<usize>, with: &[u8]) {
    data.splice(at, with.iter().copied());
}

fn insert(data: &mut Vec<u8>, at: usize, with: &[u8]) {
    splice(data, at..at, with);
}

/// Generic edits: bits, bytes, ranges, dictionary words, edge numbers, invalid UTF-8.
pub fn bytes(data: &mut Vec<u8>, dict: &Dictionary, donor: &[u8], rng: &mut Rng) {
    let len = data.len();
    let at = rng.below(len + 1);
    match rng.below(12) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] = rng.next_u64() as u8;
        }
        2 => {
            let n = 1 + rng.small_len(16);
            let random: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            insert(data, at, &random);
        }
        3 => {
            let r = rng.range(len);
            data.drain(r);
        }
        4 => {
            let r = rng.range(len);
            let copy = data[r].to_vec();
            insert(data, rng.below(data.len() + 1), &copy);
        }
        5 => insert(data, at, dict.word(rng).as_bytes()),
        6 => replace_number(data, rng),
        7 => insert(data, at, rng.choose(INVALID_UTF8)),
        8 => insert(data, at, rng.choose(AWKWARD_TEXT).as_bytes()),
        9 => data.truncate(at),
        10 if !donor.is_empty() => {
            let r = rng.range(donor.len());
            insert(data, at, &donor[r]);
        }
        _ => insert(data, at, rng.choose(NUMBERS).as_bytes()),
    }
}

/// Replaces a run of digits with an edge number (or inserts one when there are no digits).
fn replace_number(data: &mut Vec<u8>, rng: &mut Rng) {
    let len = data.len();
    let from = rng.below(len + 1);
    let Some(start) = (from..len)
        .chain(0..from)
        .find(|&i| data[i].is_ascii_digit())
    else {
        let at = rng.below(len + 1);
        insert(data, at, rng.choose(NUMBERS).as_bytes());
        return;
    };
    let mut begin = start;
    while begin > 0 && data[begin - 1].is_ascii_digit() {
        begin -= 1;
    }
    let mut end = start;
    while end < len && (data[end].is_ascii_digit() || data[end] == b'.') {
        end += 1;
    }
    splice(data, begin..end, rng.choose(NUMBERS).as_bytes());
}

// ---------------------------------------------------------------------------------------------
// XML

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    Start,
    End,
    Empty,
    Other,
}

#[derive(Debug, Clone)]
pub struct Tag {
    pub range: Range<usize>,
    pub kind: TagKind,
}

/// The tags of an XML text, found by a forgiving scan (quotes respected inside tags).
pub fn tags(data: &[u8]) -> Vec<Tag> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = memchr::memchr(b'<', &data[i..]) {
        let start = i + off;
        let mut j = start + 1;
        let mut quote = None;
        while j < data.len() {
            match (quote, data[j]) {
                (None, b'"' | b'\'') => quote = Some(data[j]),
                (Some(q), b) if b == q => quote = None,
                (None, b'>') => break,
                _ => {}
            }
            j += 1;
        }
        if j >= data.len() {
            break;
        }
        let end = j + 1;
        let kind = match data.get(start + 1) {
            Some(b'/') => TagKind::End,
            Some(b'!' | b'?') => TagKind::Other,
            _ if data[end - 2] == b'/' => TagKind::Empty,
            _ => TagKind::Start,
        };
        out.push(Tag {
            range: start..end,
            kind,
        });
        i = end;
    }
    out
}

/// The whole element that tag `i` opens (itself for an empty or other tag).
pub fn element(tags: &[Tag], i: usize) -> Range<usize> {
    let tag = &tags[i];
    if tag.kind != TagKind::Start {
        return tag.range.clone();
    }
    let mut depth = 0usize;
    for t in &tags[i + 1..] {
        match t.kind {
            TagKind::Start => depth += 1,
            TagKind::End if depth == 0 => return tag.range.start..t.range.end,
            TagKind::End => depth -= 1,
            _ => {}
        }
    }
    tag.range.clone()
}

fn tag_name(data: &[u8], tag: &Tag) -> Range<usize> {
    let mut start = tag.range.start + 1;
    if data.get(start) == Some(&b'/') {
        start += 1;
    }
    let mut end = start;
    while end < tag.range.end && !matches!(data[end], b' ' | b'\t' | b'\n' | b'\r' | b'/' | b'>') {
        end += 1;
    }
    start..end
}

/// `name="value"` pairs of a tag: (whole attribute, value without quotes).
pub fn attributes(data: &[u8], tag: &Tag) -> Vec<(Range<usize>, Range<usize>)> {
    let mut out = Vec::new();
    let mut i = tag_name(data, tag).end;
    let end = tag.range.end;
    while i < end {
        while i < end && data[i].is_ascii_whitespace() {
            i += 1;
        }
        let name_start = i;
        while i < end && !matches!(data[i], b'=' | b'>' | b'/') && !data[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= end || data[i] != b'=' || i + 1 >= end {
            break;
        }
        let quote = data[i + 1];
        if quote != b'"' && quote != b'\'' {
            break;
        }
        let value_start = i + 2;
        let Some(close) = data[value_start..end].iter().position(|&b| b == quote) else {
            break;
        };
        let value_end = value_start + close;
        out.push((name_start..value_end + 1, value_start..value_end));
        i = value_end + 1;
    }
    out
}

/// An edge value for a text node or attribute value.
fn xml_value(dict: &Dictionary, rng: &mut Rng) -> Vec<u8> {
    match rng.below(6) {
        0 => rng.choose(NUMBERS).as_bytes().to_vec(),
        1 => rng.choose(XML_MARKUP).as_bytes().to_vec(),
        2 => dict.word(rng).as_bytes().to_vec(),
        3 => rng.choose(AWKWARD_TEXT).as_bytes().to_vec(),
        4 => {
            // A long value: a word repeated up to thousands of times.
            let word = dict.word(rng);
            word.repeat(1 + rng.small_len(5000)).into_bytes()
        }
        _ => Vec::new(),
    }
}

pub fn xml(data: &mut Vec<u8>, dict: &Dictionary, donor: &[u8], rng: &mut Rng) {
    let all = tags(data);
    if all.is_empty() {
        return bytes(data, dict, donor, rng);
    }
    let i = rng.below(all.len());
    let tag = &all[i];
    match rng.below(13) {
        // Delete an element.
        0 => {
            data.drain(element(&all, i));
        }
        // Duplicate an element (duplicate ids, duplicate children, a guest listed twice).
        1 => {
            let r = element(&all, i);
            let copy = data[r.clone()].to_vec();
            insert(data, r.end, &copy);
        }
        // Swap two elements that do not overlap.
        2 => {
            let a = element(&all, i);
            let b = element(&all, rng.below(all.len()));
            let (first, second) = if a.start <= b.start { (a, b) } else { (b, a) };
            if first.end <= second.start {
                let x = data[first.clone()].to_vec();
                let y = data[second.clone()].to_vec();
                splice(data, second, &x);
                splice(data, first, &y);
            }
        }
        // Move an element elsewhere (a guest under another host, a host inside a guest).
        3 => {
            let r = element(&all, i);
            let moved: Vec<u8> = data.drain(r).collect();
            let rest = tags(data);
            let at = if rest.is_empty() {
                0
            } else {
                rest[rng.below(rest.len())].range.end
            };
            insert(data, at, &moved);
        }
        // Splice in an element of another input.
        4 => {
            let others = tags(donor);
            if others.is_empty() {
                return bytes(data, dict, donor, rng);
            }
            let r = element(&others, rng.below(others.len()));
            insert(data, tag.range.end, &donor[r]);
        }
        // Deep nesting: the element wrapped in many copies of its own start and end tag.
        5 => {
            let r = element(&all, i);
            let name = data[tag_name(data, tag)].to_vec();
            let depth = 1 + rng.small_len(20_000);
            let mut open = Vec::new();
            let mut close = Vec::new();
            for _ in 0..depth {
                open.extend_from_slice(b"<");
                open.extend_from_slice(&name);
                open.extend_from_slice(b">");
                close.extend_from_slice(b"</");
                close.extend_from_slice(&name);
                close.extend_from_slice(b">");
            }
            insert(data, r.end, &close);
            insert(data, r.start, &open);
        }
        // Rename a tag (start or end alone: mismatched tags; or to another known name).
        6 => {
            let name = tag_name(data, tag);
            let new = if rng.one_in(4) {
                rng.choose(XML_MARKUP).to_string()
            } else {
                dict.word(rng).to_string()
            };
            splice(data, name, new.as_bytes());
        }
        // Attribute edits.
        7 | 8 => {
            let attrs = attributes(data, tag);
            if attrs.is_empty() {
                let at = tag_name(data, tag).end;
                let attr = format!(" {}=\"{}\"", dict.word(rng), dict.word(rng));
                insert(data, at, attr.as_bytes());
                return;
            }
            let (whole, value) = rng.pick(&attrs).clone();
            match rng.below(5) {
                0 => {
                    data.drain(whole);
                }
                1 => {
                    let mut copy = vec![b' '];
                    copy.extend_from_slice(&data[whole.clone()]);
                    insert(data, whole.end, &copy);
                }
                2 => {
                    // Lose the closing quote.
                    data.remove(value.end);
                }
                _ => {
                    let v = xml_value(dict, rng);
                    splice(data, value, &v);
                }
            }
        }
        // Replace the text after a tag (an element's value).
        9 | 10 => {
            let start = tag.range.end;
            let end = memchr::memchr(b'<', &data[start..]).map_or(data.len(), |o| start + o);
            let v = xml_value(dict, rng);
            splice(data, start..end, &v);
        }
        // Insert markup (comments, CDATA, entities, a DOCTYPE) at a tag boundary.
        11 => {
            let at = if rng.one_in(2) {
                tag.range.start
            } else {
                tag.range.end
            };
            insert(data, at, rng.choose(XML_MARKUP).as_bytes());
        }
        // Truncate at a tag boundary (a half-copied file).
        _ => data.truncate(if rng.one_in(2) {
            tag.range.start
        } else {
            tag.range.end
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// HCL

/// Line ranges (byte offsets, newline excluded) of a text.
pub fn lines(data: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in memchr::memchr_iter(b'\n', data) {
        out.push(start..i);
        start = i + 1;
    }
    out.push(start..data.len());
    out
}

/// Blocks of an HCL text: from the start of a line ending in `{` to its matching `}`. One
/// pass with a stack, so deeply nested inputs cost no more than flat ones.
pub fn blocks(data: &[u8], _lines: &[Range<usize>]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    // One entry per open brace: the start of its line when the brace ends that line.
    let mut open: Vec<Option<usize>> = Vec::new();
    let mut line_start = 0;
    let mut in_string = false;
    let mut comment = false;
    let mut k = 0;
    while k < data.len() {
        match data[k] {
            b'\n' => {
                line_start = k + 1;
                comment = false;
                in_string = false;
            }
            _ if comment => {}
            b'\\' if in_string => k += 1,
            b'"' => in_string = !in_string,
            b'#' if !in_string => comment = true,
            b'{' if !in_string => {
                let rest = &data[k + 1..];
                let line_end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
                let ends_line = rest[..line_end].trim_ascii().is_empty();
                open.push(ends_line.then_some(line_start));
            }
            b'}' if !in_string => {
                if let Some(Some(start)) = open.pop() {
                    out.push(start..k + 1);
                }
            }
            _ => {}
        }
        k += 1;
    }
    out.sort_unstable_by_key(|r| r.start);
    out
}

/// The value part of `name = value` lines: (line, value range).
pub fn hcl_attributes(data: &[u8], lines: &[Range<usize>]) -> Vec<(Range<usize>, Range<usize>)> {
    lines
        .iter()
        .filter_map(|line| {
            let text = &data[line.clone()];
            let eq = text.iter().position(|&b| b == b'=')?;
            let key = text[..eq].trim_ascii();
            if key.is_empty() || !key.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_') {
                return None;
            }
            let mut start = line.start + eq + 1;
            while start < line.end && data[start] == b' ' {
                start += 1;
            }
            Some((line.clone(), start..line.end))
        })
        .collect()
}

fn hcl_value(dict: &Dictionary, rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => rng.choose(NUMBERS).to_string(),
        1 => format!("\"{}\"", rng.choose(NUMBERS)),
        2 => format!("\"{}\"", rng.choose(AWKWARD_TEXT).replace('"', "\\\"")),
        3 => format!("\"{}\"", dict.word(rng)),
        4 => {
            // A list of many strings: big inputs to per-item checks.
            let n = 1 + rng.small_len(3000);
            let word = dict.word(rng).to_string();
            let items: Vec<String> = (0..n).map(|k| format!("\"{word}{k}\"")).collect();
            format!("[{}]", items.join(", "))
        }
        _ => rng.choose(HCL_EXPRESSIONS).to_string(),
    }
}

pub fn hcl(data: &mut Vec<u8>, dict: &Dictionary, donor: &[u8], rng: &mut Rng) {
    let lines = lines(data);
    let line = rng.pick(&lines).clone();
    match rng.below(12) {
        // Block edits: delete, duplicate, nest inside itself, splice from another input.
        0..=3 => {
            let all = blocks(data, &lines);
            if all.is_empty() {
                return bytes(data, dict, donor, rng);
            }
            let b = rng.pick(&all).clone();
            match rng.below(4) {
                0 => {
                    data.drain(b);
                }
                1 => {
                    let mut copy = vec![b'\n'];
                    copy.extend_from_slice(&data[b.clone()]);
                    insert(data, b.end, &copy);
                }
                2 => {
                    // The block inside itself, possibly many levels deep.
                    let copy = data[b.clone()].to_vec();
                    let depth = 1 + rng.small_len(300);
                    let inner_at = b.end - 1;
                    let mut nested = Vec::new();
                    for _ in 0..depth {
                        nested.extend_from_slice(&copy[..copy.len() - 1]);
                    }
                    nested.extend(std::iter::repeat_n(b'}', depth));
                    insert(data, inner_at, &nested);
                }
                _ => {
                    let donor_lines = self::lines(donor);
                    let others = blocks(donor, &donor_lines);
                    if others.is_empty() {
                        return bytes(data, dict, donor, rng);
                    }
                    let r = rng.pick(&others).clone();
                    let mut copy = vec![b'\n'];
                    copy.extend_from_slice(&donor[r]);
                    copy.push(b'\n');
                    insert(data, b.end, &copy);
                }
            }
        }
        // Attribute value edits.
        4..=6 => {
            let attrs = hcl_attributes(data, &lines);
            if attrs.is_empty() {
                return bytes(data, dict, donor, rng);
            }
            let (_, value) = rng.pick(&attrs).clone();
            let v = hcl_value(dict, rng);
            splice(data, value, v.as_bytes());
        }
        // A new attribute or block with a known name.
        7 => {
            let text = if rng.one_in(2) {
                format!("\n{} = {}\n", dict.word(rng), hcl_value(dict, rng))
            } else {
                format!(
                    "\n{} \"{}\" {{\n  {} = {}\n}}\n",
                    dict.word(rng),
                    dict.word(rng),
                    dict.word(rng),
                    hcl_value(dict, rng)
                )
            };
            insert(data, line.end, text.as_bytes());
        }
        // Rename the first word of a line (an attribute or block type).
        8 => {
            let text = &data[line.clone()];
            let start = text.iter().position(|b| !b.is_ascii_whitespace());
            if let Some(s) = start {
                let len = text[s..]
                    .iter()
                    .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_'))
                    .unwrap_or(text.len() - s);
                let w = dict.word(rng).to_string();
                splice(data, line.start + s..line.start + s + len, w.as_bytes());
            }
        }
        // Line edits: duplicate, delete, swap.
        9 => {
            let mut copy = data[line.clone()].to_vec();
            copy.push(b'\n');
            insert(data, line.start, &copy);
        }
        10 => {
            let end = (line.end + 1).min(data.len());
            data.drain(line.start..end);
        }
        _ => {
            let other = rng.pick(&lines).clone();
            let (a, b) = if line.start <= other.start {
                (line, other)
            } else {
                (other, line)
            };
            if a.end < b.start {
                let x = data[a.clone()].to_vec();
                let y = data[b.clone()].to_vec();
                splice(data, b, &x);
                splice(data, a, &y);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON

use serde_json::Value;

/// Number of nodes of a JSON value, for picking one uniformly.
fn count(v: &Value) -> usize {
    1 + match v {
        Value::Array(items) => items.iter().map(count).sum(),
        Value::Object(map) => map.values().map(count).sum(),
        _ => 0,
    }
}

/// The `n`-th node in pre-order.
fn nth<'a>(v: &'a mut Value, n: &mut usize) -> Option<&'a mut Value> {
    if *n == 0 {
        return Some(v);
    }
    *n -= 1;
    match v {
        Value::Array(items) => items.iter_mut().find_map(|c| nth(c, n)),
        Value::Object(map) => map.values_mut().find_map(|c| nth(c, n)),
        _ => None,
    }
}

fn nth_ref<'a>(v: &'a Value, n: &mut usize) -> Option<&'a Value> {
    if *n == 0 {
        return Some(v);
    }
    *n -= 1;
    match v {
        Value::Array(items) => items.iter().find_map(|c| nth_ref(c, n)),
        Value::Object(map) => map.values().find_map(|c| nth_ref(c, n)),
        _ => None,
    }
}

fn node<'a>(root: &'a mut Value, rng: &mut Rng) -> &'a mut Value {
    let mut n = rng.below(count(root));
    nth(root, &mut n).expect("n < count")
}

fn json_scalar(dict: &Dictionary, rng: &mut Rng) -> Value {
    match rng.below(9) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => serde_json::from_str(rng.choose(NUMBERS)).unwrap_or(Value::from(u64::MAX)),
        3 => Value::from(rng.next_u64()),
        4 => Value::from(-(rng.small_len(1 << 20) as i64)),
        5 => Value::from(rng.choose(JSON_STRINGS).to_string()),
        6 => Value::from(dict.word(rng).to_string()),
        7 => Value::from(rng.choose(AWKWARD_TEXT).to_string()),
        _ => {
            if rng.one_in(2) {
                Value::Array(Vec::new())
            } else {
                Value::Object(Default::default())
            }
        }
    }
}

/// Tree edits on a parsed JSON value.
fn json_tree(root: &mut Value, dict: &Dictionary, donor: &[u8], rng: &mut Rng) {
    let op = rng.below(8);
    // Another input is parsed only for the splice, the one edit that needs it.
    let donor_node = (op == 4)
        .then(|| serde_json::from_slice::<Value>(donor).ok())
        .flatten()
        .map(|d| {
            let mut n = rng.below(count(&d));
            nth_ref(&d, &mut n).cloned().unwrap_or(Value::Null)
        });
    let target = node(root, rng);
    match op {
        0 | 1 => *target = json_scalar(dict, rng),
        2 => match target {
            Value::Object(map) if !map.is_empty() => {
                let key = map
                    .keys()
                    .nth(rng.below(map.len()))
                    .cloned()
                    .unwrap_or_default();
                map.remove(&key);
            }
            Value::Array(items) if !items.is_empty() => {
                items.remove(rng.below(items.len()));
            }
            other => *other = Value::Null,
        },
        3 => match target {
            Value::Array(items) if !items.is_empty() => {
                let copy = items[rng.below(items.len())].clone();
                let n = 1 + rng.small_len(1000);
                for _ in 0..n {
                    items.push(copy.clone());
                }
            }
            Value::Object(map) => {
                map.insert(dict.word(rng).to_string(), json_scalar(dict, rng));
            }
            other => *other = Value::Array(vec![other.clone(), other.clone()]),
        },
        4 => {
            if let Some(d) = donor_node {
                *target = d;
            }
        }
        5 => {
            // Wrap in arrays, deeper than serde_json's recursion limit at times.
            let depth = 1 + rng.small_len(200);
            for _ in 0..depth {
                *target = Value::Array(vec![target.take()]);
            }
        }
        6 => {
            if let Value::Object(map) = target {
                // Rename a key to another known one.
                if let Some(key) = map.keys().nth(rng.below(map.len().max(1))).cloned() {
                    let v = map.remove(&key).unwrap_or(Value::Null);
                    map.insert(dict.word(rng).to_string(), v);
                }
            } else if let Value::String(s) = target {
                s.push_str(rng.choose(AWKWARD_TEXT));
            }
        }
        _ => {
            if let Value::String(s) = target {
                *s = rng.choose(JSON_STRINGS).to_string();
            } else if let Value::Number(_) = target {
                *target = serde_json::from_str(rng.choose(NUMBERS)).unwrap_or(Value::from(-1));
            }
        }
    }
}

pub fn json(data: &mut Vec<u8>, dict: &Dictionary, donor: &[u8], rng: &mut Rng) {
    match rng.below(10) {
        // Textual edits that a tree cannot express: duplicate keys, a key line dropped,
        // deep nesting past the parser's limit.
        0 => {
            let lines = lines(data);
            let line = rng.pick(&lines).clone();
            let mut copy = data[line.clone()].to_vec();
            copy.push(b'\n');
            insert(data, line.start, &copy);
        }
        1 => {
            let depth = 1 + rng.small_len(100_000);
            let at = rng.below(data.len() + 1);
            let mut nest = vec![b'['; depth];
            nest.extend(std::iter::repeat_n(b']', depth));
            insert(data, at, &nest);
        }
        2 => replace_number(data, rng),
        _ => {
            let Ok(mut root) = serde_json::from_slice::<Value>(data) else {
                return bytes(data, dict, donor, rng);
            };
            json_tree(&mut root, dict, donor, rng);
            *data = if rng.one_in(2) {
                serde_json::to_vec_pretty(&root)
            } else {
                serde_json::to_vec(&root)
            }
            .unwrap_or_default();
        }
    }
}
