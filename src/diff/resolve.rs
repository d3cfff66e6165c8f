//! Names in the configuration → names in the topology.
//!
//! A label is either the full es.xml host name (`exa01adm01vm01.example.com`) or its short form,
//! the first DNS label (`exa01adm01vm01`), when exactly one name has that short form.

use super::suggest;

/// The first DNS label of a name.
pub fn short_name(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// Outcome of looking one label up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution<'a> {
    Found(&'a str),
    /// Several full names share this short form (sorted).
    Ambiguous(Vec<&'a str>),
    /// No name matches; the closest name, when one is close.
    Unknown {
        suggestion: Option<&'a str>,
    },
}

/// Lookup table over one set of names (all guests, or all hosts).
///
/// Short forms are found in the sorted full names too: the names whose first DNS label is `x`
/// are `x` itself and those beginning with `x.`, a run of the sorted list. No table of short
/// forms is built, which at a million guests was a million entries (and as many `Vec`s) for
/// the few labels a configuration writes.
pub struct NameIndex<'a> {
    /// Full names in sorted order, for exact lookup, short forms and suggestions.
    full: Vec<&'a str>,
}

impl<'a> NameIndex<'a> {
    pub fn new(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut full: Vec<&'a str> = names.into_iter().collect();
        full.sort_unstable();
        full.dedup();
        NameIndex { full }
    }

    /// The names that begin with `short` and a dot (sorted): those whose short form is
    /// `short`, apart from `short` itself. None when `short` holds a dot (no short form does).
    fn dotted(&self, short: &str) -> &[&'a str] {
        if short.contains('.') {
            return &[];
        }
        let dotted = || short.bytes().chain(Some(b'.'));
        let start = self.full.partition_point(|n| n.bytes().lt(dotted()));
        let rest = &self.full[start..];
        let len = rest.partition_point(|n| {
            n.len() > short.len() && n.starts_with(short) && n.as_bytes()[short.len()] == b'.'
        });
        &rest[..len]
    }

    /// How many names have the short form `short`.
    fn short_count(&self, short: &str) -> usize {
        self.dotted(short).len() + usize::from(self.full.binary_search(&short).is_ok())
    }

    pub fn resolve(&self, label: &str) -> Resolution<'a> {
        if let Ok(i) = self.full.binary_search(&label) {
            return Resolution::Found(self.full[i]);
        }
        // No name is `label` itself: its short-form matches are the dotted ones.
        match self.dotted(label) {
            [one] => Resolution::Found(one),
            many if !many.is_empty() => Resolution::Ambiguous(many.to_vec()),
            _ => {
                // Offer names in the form the label was written in: a short label gets short
                // forms, except where a short form is ambiguous and only the full name works.
                let suggestion = if label.contains('.') {
                    suggest::closest(label, self.full.iter().copied())
                } else {
                    let written = self.full.iter().map(|n| {
                        let short = short_name(n);
                        if self.short_count(short) == 1 {
                            short
                        } else {
                            n
                        }
                    });
                    suggest::closest(label, written)
                };
                Resolution::Unknown { suggestion }
            }
        }
    }

    /// Whether `label` names something in this index (exactly or by an unambiguous short form).
    pub fn contains(&self, label: &str) -> bool {
        matches!(self.resolve(label), Resolution::Found(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_full_short_ambiguous_and_unknown() {
        let index = NameIndex::new([
            "vm01.a.example.com",
            "vm01.b.example.com",
            "vm02.example.com",
        ]);
        assert_eq!(
            index.resolve("vm02.example.com"),
            Resolution::Found("vm02.example.com")
        );
        assert_eq!(index.resolve("vm02"), Resolution::Found("vm02.example.com"));
        assert_eq!(
            index.resolve("vm01"),
            Resolution::Ambiguous(vec!["vm01.a.example.com", "vm01.b.example.com"])
        );
        assert_eq!(
            index.resolve("vm03"),
            Resolution::Unknown {
                suggestion: Some("vm02")
            }
        );
        assert_eq!(
            index.resolve("zzzzzzzzzz"),
            Resolution::Unknown { suggestion: None }
        );
    }

    /// What `resolve` answered when it kept a table of short forms: every name whose first
    /// DNS label is the label, by a scan of all names.
    fn by_scan<'a>(names: &[&'a str], label: &str) -> Resolution<'a> {
        if let Some(exact) = names.iter().find(|n| **n == label) {
            return Resolution::Found(exact);
        }
        let mut short: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| short_name(n) == label)
            .collect();
        short.sort_unstable();
        short.dedup();
        match short.as_slice() {
            [one] => Resolution::Found(one),
            [] => Resolution::Unknown { suggestion: None },
            many => Resolution::Ambiguous(many.to_vec()),
        }
    }

    #[test]
    fn short_forms_found_in_the_sorted_names_match_a_scan() {
        // Prefixes of one another, a name that is another's short form, characters that sort
        // before and after the dot.
        let names = [
            "vm1",
            "vm1.a.example.com",
            "vm1.b.example.com",
            "vm1-b.example.com",
            "vm10.example.com",
            "vm1a.example.com",
            "vm2.example.com",
            "vm2",
            "vm3.example.com",
            "vm3.x",
            "vm4.example.com",
            ".example.com",
            "vm5",
        ];
        let index = NameIndex::new(names);
        let labels = [
            "vm1", "vm1-b", "vm10", "vm1a", "vm2", "vm3", "vm4", "vm5", "vm6", "", "vm", "vm1.a",
            "vm1.", "vm3.x",
        ];
        for label in labels {
            let got = index.resolve(label);
            match by_scan(&names, label) {
                Resolution::Unknown { .. } => {
                    assert!(
                        matches!(got, Resolution::Unknown { .. }),
                        "{label}: {got:?}"
                    )
                }
                expected => assert_eq!(got, expected, "{label}"),
            }
        }
        assert_eq!(
            index.resolve("vm3"),
            Resolution::Ambiguous(vec!["vm3.example.com", "vm3.x"])
        );
        assert_eq!(
            index.resolve("vm1-b"),
            Resolution::Found("vm1-b.example.com")
        );
        // "vm1" itself and two dotted names share the short form: suggested by full name.
        assert_eq!(index.short_count("vm1"), 3);
        assert_eq!(index.short_count("vm4"), 1);
        assert_eq!(index.short_count("vm6"), 0);
    }
}
