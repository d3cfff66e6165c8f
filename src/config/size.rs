//! Memory sizes as HCL writes them (`16GiB`, `512M`, `1TiB`, `1.5GiB`), in MiB.
//!
//! Kept private to the config layer so that config stays a leaf module; every unit is binary
//! (`G`, `GB` and `GiB` all mean 1024³ bytes), as memory on these hosts is always counted.

/// Parses a size into whole MiB, or says what is wrong with it (the caller adds the place).
pub(crate) fn parse_size_mib(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = (&text[..split], text[split..].trim_start());
    if number.is_empty() {
        return Err("a size starts with a number".into());
    }
    let mib_per_unit: u64 = match unit.to_ascii_lowercase().as_str() {
        "m" | "mb" | "mib" => 1,
        "g" | "gb" | "gib" => 1024,
        "t" | "tb" | "tib" => 1024 * 1024,
        "" => return Err("the size has no unit".into()),
        _ => return Err(format!("unknown unit `{unit}`")),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || fraction.contains('.') || (number.contains('.') && fraction.is_empty()) {
        return Err(format!("`{number}` is not a number"));
    }
    let whole: u64 = whole
        .parse()
        .map_err(|_| format!("`{number}` is too large"))?;
    let mut mib = whole
        .checked_mul(mib_per_unit)
        .ok_or_else(|| format!("`{text}` is too large"))?;
    if !fraction.is_empty() {
        // Exact decimal arithmetic: fraction/10^digits of a unit must be whole MiB.
        let digits = u32::try_from(fraction.len()).map_err(|_| "too many decimals".to_string())?;
        let scale = 10u64.checked_pow(digits).ok_or("too many decimals")?;
        let numerator: u64 = fraction
            .parse()
            .map_err(|_| format!("`{number}` is not a number"))?;
        let scaled = numerator
            .checked_mul(mib_per_unit)
            .ok_or_else(|| format!("`{text}` has too many decimals"))?;
        if scaled % scale != 0 {
            return Err(format!("`{text}` is not a whole number of MiB"));
        }
        mib = mib
            .checked_add(scaled / scale)
            .ok_or_else(|| format!("`{text}` is too large"))?;
    }
    Ok(mib)
}

#[cfg(test)]
mod tests {
    use super::parse_size_mib;

    #[test]
    fn binary_units_in_every_spelling() {
        for (text, mib) in [
            ("16GiB", 16 * 1024),
            ("16GB", 16 * 1024),
            ("16G", 16 * 1024),
            ("16 gib", 16 * 1024),
            ("512MiB", 512),
            ("512M", 512),
            ("1TiB", 1024 * 1024),
            ("1.5GiB", 1536),
            ("0G", 0),
        ] {
            assert_eq!(parse_size_mib(text), Ok(mib), "{text}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_size() {
        for (text, why) in [
            ("16", "no unit"),
            ("16XB", "unknown unit `XB`"),
            ("GiB", "starts with a number"),
            ("1.2.3G", "not a number"),
            ("1.G", "not a number"),
            ("1.0001M", "not a whole number of MiB"),
            ("99999999999999999999G", "too large"),
            ("-1G", "starts with a number"),
        ] {
            let err = parse_size_mib(text).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
