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

/// Why `need` does not fit in `free` of `capacity` memory (MiB): `only 32 GiB free, 64 GiB
/// needed`, or, for a host already above its capacity, `none free (1.2 TiB in use of 1 TiB),
/// 64 GiB needed`: never a negative amount of free memory.
pub fn memory_shortfall(free: i64, capacity: Option<u64>, need: u64) -> String {
    if free > 0 {
        return format!("only {} free, {} needed", mib(free as u64), mib(need));
    }
    match capacity {
        Some(capacity) => format!(
            "none free ({} in use of {}), {} needed",
            mib(capacity.saturating_add(free.unsigned_abs())),
            mib(capacity),
            mib(need)
        ),
        None => format!("none free, {} needed", mib(need)),
    }
}

/// The same for vCPUs: `only 8 vCPUs of 96 vCPUs free, 16 vCPUs needed`, or `none of 96
/// vCPUs free (256 in use), 16 vCPUs needed`.
pub fn vcpu_shortfall(used: u64, limit: u64, need: u64) -> String {
    if used < limit {
        format!(
            "only {} of {} free, {} needed",
            vcpus((limit - used) as i64),
            vcpus(limit as i64),
            vcpus(need as i64)
        )
    } else {
        format!(
            "none of {} free ({used} in use), {} needed",
            vcpus(limit as i64),
            vcpus(need as i64)
        )
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
    fn a_host_above_its_capacity_has_none_free_never_a_negative_amount() {
        assert_eq!(
            vcpu_shortfall(256, 96, 8),
            "none of 96 vCPUs free (256 in use), 8 vCPUs needed"
        );
        assert_eq!(
            vcpu_shortfall(96, 96, 8),
            "none of 96 vCPUs free (96 in use), 8 vCPUs needed"
        );
        assert_eq!(
            vcpu_shortfall(88, 96, 16),
            "only 8 vCPUs of 96 vCPUs free, 16 vCPUs needed"
        );
        assert_eq!(
            memory_shortfall(-1024, Some(4096), 2048),
            "none free (5 GiB in use of 4 GiB), 2 GiB needed"
        );
        assert_eq!(
            memory_shortfall(1024, Some(4096), 2048),
            "only 1 GiB free, 2 GiB needed"
        );
        assert_eq!(memory_shortfall(0, None, 2048), "none free, 2 GiB needed");
    }

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
