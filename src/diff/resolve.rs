//! Names in the configuration → names in the topology.
//!
//! A label is either the full es.xml host name (`exa01adm01vm01.example.com`) or its short form,
//! the first DNS label (`exa01adm01vm01`), when exactly one name has that short form.

use std::collections::HashMap;

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
pub struct NameIndex<'a> {
    /// Full names in sorted order, for exact lookup and suggestions.
    full: Vec<&'a str>,
    short: HashMap<&'a str, Vec<&'a str>>,
}

impl<'a> NameIndex<'a> {
    pub fn new(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut full: Vec<&'a str> = names.into_iter().collect();
        full.sort_unstable();
        full.dedup();
        let mut short: HashMap<&'a str, Vec<&'a str>> = HashMap::with_capacity(full.len());
        for name in &full {
            short.entry(short_name(name)).or_default().push(name);
        }
        NameIndex { full, short }
    }

    pub fn resolve(&self, label: &str) -> Resolution<'a> {
        if let Ok(i) = self.full.binary_search(&label) {
            return Resolution::Found(self.full[i]);
        }
        match self.short.get(label).map(Vec::as_slice) {
            Some([one]) => Resolution::Found(one),
            Some(many) if !many.is_empty() => Resolution::Ambiguous(many.to_vec()),
            _ => {
                // Offer names in the form the label was written in: a short label gets short
                // forms, except where a short form is ambiguous and only the full name works.
                let suggestion = if label.contains('.') {
                    suggest::closest(label, self.full.iter().copied())
                } else {
                    let written = self.full.iter().map(|n| {
                        let short = short_name(n);
                        if self.short.get(short).is_some_and(|v| v.len() == 1) {
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
}
