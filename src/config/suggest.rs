//! "Did you mean …?" for misspelled block, attribute and enum names.

/// The closest candidate to `typo`, when it is close enough to be a plausible misspelling.
pub(crate) fn did_you_mean<'a>(
    typo: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = match typo.chars().count() {
        0..=4 => 1,
        5..=8 => 2,
        _ => 3,
    };
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(typo, candidate), candidate))
        .filter(|&(distance, _)| distance <= limit)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate)
}

/// Optimal-string-alignment distance (strsim): insertions, deletions, substitutions and
/// adjacent transpositions each cost 1, so `drian` is one step from `drain`. Case is ignored.
/// The one edit distance of berth's "did you mean" (names of attributes, guests and hosts).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    strsim::osa_distance(&a.to_lowercase(), &b.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::{did_you_mean, edit_distance};

    #[test]
    fn distances() {
        assert_eq!(edit_distance("drian", "drain"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("Mode", "mode"), 0);
    }

    #[test]
    fn suggests_only_close_names() {
        let attrs = [
            "drain",
            "disabled",
            "max_guests",
            "libvirt_uri",
            "memory_reserved",
        ];
        assert_eq!(did_you_mean("drian", attrs), Some("drain"));
        assert_eq!(did_you_mean("max_guest", attrs), Some("max_guests"));
        assert_eq!(
            did_you_mean("memory_reservd", attrs),
            Some("memory_reserved")
        );
        assert_eq!(did_you_mean("colour", attrs), None);
        assert_eq!(
            did_you_mean("ofline", ["offline", "offline_force", "live"]),
            Some("offline")
        );
    }
}
