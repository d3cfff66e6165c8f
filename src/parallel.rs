//! Two pieces of work at once, on the two cores berth is measured on (docs/benchmarks.md).
//!
//! A leaf any stage may use: the es.xml parse, placement, and the plan's fingerprints and es.xml
//! diff each run one independent piece beside their own. Each result is made by one thread
//! from the same inputs, so the output does not depend on which finishes first.

/// Runs `a` here and `b` on a second thread; both run to the end. The closures return errors
/// as values; a panic is a bug, passed on as is.
pub fn both<A: Send, B: Send>(
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    std::thread::scope(|s| {
        let b = s.spawn(b);
        let a = a();
        let b = b
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (a, b)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_results_come_back_in_their_places() {
        let here = std::thread::current().id();
        let ((a, a_thread), (b, b_thread)) = super::both(
            || (1, std::thread::current().id()),
            || ("b", std::thread::current().id()),
        );
        assert_eq!((a, b), (1, "b"));
        assert_eq!(a_thread, here);
        assert_ne!(b_thread, here);
    }

    #[test]
    #[should_panic(expected = "second")]
    fn a_panic_on_the_second_thread_is_passed_on() {
        super::both(|| (), || panic!("second"));
    }
}
