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

/// Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent
/// transpositions each cost 1, so `drian` is one step from `drain`. Case is ignored.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    // rows[i][j] = distance between a[..i] and b[..j]
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
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
