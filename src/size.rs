//! Memory sizes as es.xml and HCL write them (`64GB`, `1390Gb`, `2048G`, `512M`, `16GiB`, `1.5TB`).
//!
//! The one size parser of berth: a leaf module, so that both `config` and `inventory` use it.
//!
//! Exadata writes decimal-looking units (`GB`, `Gb`) but means binary ones: `1G` is 1024 MiB.
//! berth follows that convention everywhere, so es.xml and HCL sizes compare without surprises.
//! Everything is kept in whole MiB; arithmetic is exact (no floating point), so `1.5TB` is
//! exactly 1572864 MiB and a size that is not a whole number of MiB is refused.

use std::fmt;

/// Why a size text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a size: {reason}")]
pub struct SizeError {
    /// The text as given.
    pub text: String,
    pub reason: SizeErrorReason,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeErrorReason {
    #[error("it is empty")]
    Empty,
    #[error("unit required (M, G or T, e.g. `64GB`)")]
    UnitRequired,
    #[error("unknown unit `{0}` (expected M/MB/MiB, G/GB/GiB or T/TB/TiB)")]
    UnknownUnit(String),
    #[error("`{0}` is not a non-negative decimal number")]
    BadNumber(String),
    #[error("it is not a whole number of MiB")]
    NotWholeMib,
    #[error("it is too large")]
    TooLarge,
}

/// Parses a memory size with a mandatory unit into MiB.
///
/// Units (case-insensitive): `M`, `MB`, `MiB`; `G`, `GB`, `GiB`; `T`, `TB`, `TiB`; all binary.
/// A decimal point is allowed (`1.5TB`), as is whitespace between number and unit (`64 GB`).
pub fn parse_size_mib(s: &str) -> Result<u64, SizeError> {
    let fail = |reason| SizeError {
        text: s.to_string(),
        reason,
    };
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err(fail(SizeErrorReason::Empty));
    }
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = (&trimmed[..split], trimmed[split..].trim_start());
    if number.is_empty() {
        return Err(fail(SizeErrorReason::BadNumber(trimmed.to_string())));
    }
    if unit.is_empty() {
        return Err(fail(SizeErrorReason::UnitRequired));
    }
    let multiplier =
        unit_mib(unit).ok_or_else(|| fail(SizeErrorReason::UnknownUnit(unit.to_string())))?;
    let (scaled, denominator) = parse_decimal(number)
        .ok_or_else(|| fail(SizeErrorReason::BadNumber(number.to_string())))?;
    let mib_scaled = scaled
        .checked_mul(multiplier)
        .ok_or_else(|| fail(SizeErrorReason::TooLarge))?;
    if mib_scaled % denominator != 0 {
        return Err(fail(SizeErrorReason::NotWholeMib));
    }
    u64::try_from(mib_scaled / denominator).map_err(|_| fail(SizeErrorReason::TooLarge))
}

const MIB_PER_GIB: u64 = 1024;
const MIB_PER_TIB: u64 = 1024 * 1024;

/// MiB per unit, or `None` for an unknown unit.
fn unit_mib(unit: &str) -> Option<u128> {
    let mib = match unit.as_bytes().first()?.to_ascii_lowercase() {
        b'm' => 1,
        b'g' => MIB_PER_GIB,
        b't' => MIB_PER_TIB,
        _ => return None,
    };
    let suffix = &unit[1..];
    let known =
        suffix.is_empty() || suffix.eq_ignore_ascii_case("b") || suffix.eq_ignore_ascii_case("ib");
    known.then_some(u128::from(mib))
}

/// `"1.25"` → `(125, 100)`: the number as an integer over a power of ten, exactly.
fn parse_decimal(number: &str) -> Option<(u128, u128)> {
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int_part) || !all_digits(frac_part) || frac_part.len() > 18 {
        return None;
    }
    let mut value: u128 = 0;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        value = value.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
    }
    Some((value, 10u128.pow(frac_part.len() as u32)))
}

/// Formats MiB for humans in the largest unit that shows the value exactly with at most two
/// decimals (`64 GiB`, `1.5 GiB`, `1.5 TiB`, `512 MiB`, `1365 MiB`). Exactness matters: a plan
/// that says "needs 1365 MiB, 1364 MiB free" must never print the same rounded number twice.
pub fn format_mib(mib: u64) -> String {
    for (unit_mib, unit) in [(MIB_PER_TIB, "TiB"), (MIB_PER_GIB, "GiB")] {
        if mib >= unit_mib && (u128::from(mib) * 100) % u128::from(unit_mib) == 0 {
            return format!(
                "{} {unit}",
                Hundredths(u128::from(mib) * 100 / u128::from(unit_mib))
            );
        }
    }
    format!("{mib} MiB")
}

/// A count of hundredths, shown with up to two decimals and no trailing zeros.
struct Hundredths(u128);

impl fmt::Display for Hundredths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 100, self.0 % 100);
        match frac {
            0 => write!(f, "{whole}"),
            _ if frac % 10 == 0 => write!(f, "{whole}.{}", frac / 10),
            _ => write!(f, "{whole}.{frac:02}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exadata_and_hcl_spellings() {
        let cases = [
            ("1390Gb", 1390 * 1024),
            ("45GB", 45 * 1024),
            ("2048G", 2048 * 1024),
            ("512M", 512),
            ("512mb", 512),
            ("16GiB", 16 * 1024),
            ("16gib", 16 * 1024),
            ("1536GB", 1536 * 1024),
            ("1.5TB", 1536 * 1024),
            ("2t", 2 * 1024 * 1024),
            ("3TiB", 3 * 1024 * 1024),
            ("64 GB", 64 * 1024),
            ("  8G  ", 8 * 1024),
            ("0.5G", 512),
            (".5G", 512),
            ("1.G", 1024),
            ("0M", 0),
        ];
        for (text, mib) in cases {
            assert_eq!(parse_size_mib(text), Ok(mib), "{text}");
        }
    }

    #[test]
    fn refuses_bad_sizes_naming_the_text() {
        let cases = [
            ("", SizeErrorReason::Empty),
            ("   ", SizeErrorReason::Empty),
            ("64", SizeErrorReason::UnitRequired),
            ("1.5", SizeErrorReason::UnitRequired),
            ("lots", SizeErrorReason::BadNumber("lots".into())),
            ("GB", SizeErrorReason::BadNumber("GB".into())),
            ("-4GB", SizeErrorReason::BadNumber("-4GB".into())),
            ("1.2.3G", SizeErrorReason::BadNumber("1.2.3".into())),
            (".G", SizeErrorReason::BadNumber(".".into())),
            ("64KB", SizeErrorReason::UnknownUnit("KB".into())),
            (
                "64 GB extra",
                SizeErrorReason::UnknownUnit("GB extra".into()),
            ),
            ("1.0000001M", SizeErrorReason::NotWholeMib),
            ("99999999999999999999999T", SizeErrorReason::TooLarge),
        ];
        for (text, reason) in cases {
            let err = parse_size_mib(text).unwrap_err();
            assert_eq!(err.reason, reason, "{text:?}");
            assert_eq!(err.text, text);
            assert!(err.to_string().contains(&format!("`{text}`")), "{err}");
        }
        assert!(
            parse_size_mib("64")
                .unwrap_err()
                .to_string()
                .contains("unit required")
        );
    }

    #[test]
    fn formats_exactly_in_the_largest_fitting_unit() {
        let cases = [
            (0, "0 MiB"),
            (512, "512 MiB"),
            (1023, "1023 MiB"),
            (1024, "1 GiB"),
            (1536, "1.5 GiB"),
            (1280, "1.25 GiB"),
            (1365, "1365 MiB"),
            (64 * 1024, "64 GiB"),
            (1390 * 1024, "1390 GiB"),
            (1024 * 1024, "1 TiB"),
            (1536 * 1024, "1.5 TiB"),
            (1537 * 1024, "1537 GiB"),
        ];
        for (mib, text) in cases {
            assert_eq!(format_mib(mib), text, "{mib}");
        }
    }

    #[test]
    fn formatted_sizes_parse_back() {
        for mib in [
            512, 1024, 1536, 1280, 65536, 1_423_360, 1_572_864, 1_048_576,
        ] {
            assert_eq!(parse_size_mib(&format_mib(mib)), Ok(mib), "{mib}");
        }
    }
}
