//! The memory allocator berth's binaries use.
//!
//! Planning a large fleet builds millions of small strings (es.xml's names, ids and paths) and
//! frees most of them again; with glibc's malloc a quarter of the planning time went to
//! allocating and freeing (docs/benchmarks.md). mimalloc halves that. berth is a short-lived
//! command, so memory freed during a run is kept for reuse rather than handed back to the
//! operating system in between: handing it back (mimalloc's default purge after 10 ms) made
//! the reconcile stage twice as slow, for a peak RSS that is the same either way.
//!
//!
//! Its memory is also asked for in transparent huge pages (`madvise(MADV_HUGEPAGE)` on
//! mimalloc's 2 MiB-aligned regions; the kernel decides, with the default `madvise` setting of
//! `/sys/kernel/mm/transparent_hugepage/enabled`). Touching fresh memory is the largest single
//! cost of planning a 100,000-host fleet (the kernel's zeroing of fresh pages took a third of
//! all samples); with huge pages the 100,000-host plan took 26.2–26.3 s of CPU against 27.4 s
//! without, back to back (docs/benchmarks.md, "Where planning stands").
//!
//! The binary (`src/main.rs`) and the benchmarks declare `#[global_allocator]` with
//! [`Allocator`] and call [`configure`] first, so the figures in docs/ are those of `berth`.

/// The global allocator type.
pub type Allocator = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (include/mimalloc.h): the delay in
/// milliseconds before freed memory is returned to the OS, `-1` for never. libmimalloc-sys
/// does not name this variant.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tunes the allocator for a short-lived process: freed memory stays with the process, and
/// fresh memory comes in huge pages where the kernel allows them.
pub fn configure() {
    // SAFETY: `mi_option_set` only stores an integer option; any value is valid for it.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        libmimalloc_sys::mi_option_set(libmimalloc_sys::mi_option_large_os_pages, 1);
    }
}

/// Whether huge pages are asked for, for the test that checks [`configure`].
pub fn large_os_pages() -> bool {
    // SAFETY: reads an integer option.
    unsafe { libmimalloc_sys::mi_option_get(libmimalloc_sys::mi_option_large_os_pages) != 0 }
}

/// The purge delay in force, for the test that checks [`configure`] reaches the right option.
pub fn purge_delay() -> std::ffi::c_long {
    // SAFETY: reads an integer option.
    unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn configure_turns_purging_off_and_huge_pages_on() {
        // mimalloc's documented default is 10 ms; after `configure` it is -1 (never).
        assert_ne!(super::purge_delay(), -1, "purging is on by default");
        assert!(!super::large_os_pages(), "huge pages are off by default");
        super::configure();
        assert_eq!(super::purge_delay(), -1);
        assert!(super::large_os_pages());
    }
}
