//! "Did you mean" for misspelt guest and host names.

use crate::config::suggest::edit_distance as distance;

/// The candidate closest to `wanted`, when it is close enough to be a plausible typo
/// (at most a third of the label's length, and at least 2 edits allowed). Ties go to the
/// first candidate in iteration order, so callers pass names in a stable order.
pub fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let allowed = (wanted.chars().count() / 3).max(2);
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let d = distance(wanted, candidate);
        if d <= allowed && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_near_name_and_refuses_a_far_one() {
        let names = ["exa01adm01", "exa01adm02", "exa02adm01"];
        assert_eq!(closest("exa01amd02", names), Some("exa01adm02"));
        assert_eq!(closest("completely-else", names), None);
        assert_eq!(distance("kitten", "sitting"), 3);
        // A swap of two letters is one edit, as for attribute names.
        assert_eq!(distance("exa01amd02", "exa01adm02"), 1);
    }
}
