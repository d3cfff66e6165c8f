//! Numbers in messages: memory is shown in GiB the way operators size Exadata guests.

/// `196608` → `192 GiB`, `1536` → `1.5 GiB`, `512` → `512 MiB`.
pub fn mib(value: u64) -> String {
    if value >= 1024 && value.is_multiple_of(1024) {
        format!("{} GiB", value / 1024)
    } else if value >= 1024 {
        let gib = value as f64 / 1024.0;
        format!("{gib:.1} GiB")
    } else {
        format!("{value} MiB")
    }
}

/// Like [`mib`], for room that may be negative (a host already above its capacity).
pub fn mib_signed(value: i64) -> String {
    if value < 0 {
        format!("-{}", mib(value.unsigned_abs()))
    } else {
        mib(value as u64)
    }
}

/// `1 vCPU`, `8 vCPUs`.
pub fn vcpus(value: i64) -> String {
    if value == 1 {
        "1 vCPU".into()
    } else {
        format!("{value} vCPUs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_whole_gib_fractions_and_small_values() {
        assert_eq!(mib(196_608), "192 GiB");
        assert_eq!(mib(1536), "1.5 GiB");
        assert_eq!(mib(512), "512 MiB");
        assert_eq!(mib_signed(-65_536), "-64 GiB");
        assert_eq!(vcpus(1), "1 vCPU");
        assert_eq!(vcpus(16), "16 vCPUs");
    }
}
