//! Telling a live migration that makes no progress from a slow one.
//!
//! A migration whose network went away does not fail on its own: QEMU waits for the socket,
//! libvirt waits for QEMU, and berth would wait for libvirt. The memory counters of the
//! migration job are what moves while a migration works, however slowly; when they have not
//! moved for the stall timeout, the migration is stuck, and berth aborts it (the guest stays
//! on its source) and names what stalled.

use std::time::{Duration, Instant};

/// Watches one migration's memory counter.
#[derive(Debug)]
pub struct StallWatch {
    timeout: Duration,
    last: Option<u64>,
    since: Instant,
}

impl StallWatch {
    /// Starts watching at `now`; the migration has `timeout` to show progress.
    pub fn new(timeout: Duration, now: Instant) -> StallWatch {
        StallWatch {
            timeout,
            last: None,
            since: now,
        }
    }

    /// Records the counter read at `now` (`None`: no counter yet, the job has not started
    /// copying). Returns how long nothing moved, once that reaches the timeout.
    pub fn observe(&mut self, counter: Option<u64>, now: Instant) -> Option<Duration> {
        if counter.is_some() && counter != self.last {
            self.last = counter;
            self.since = now;
            return None;
        }
        let still = now.saturating_duration_since(self.since);
        (still >= self.timeout).then_some(still)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_counter_that_stops_for_the_whole_timeout_is_a_stall() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = StallWatch::new(s(10), t0);
        // No counter yet: the wait counts from the start.
        assert_eq!(w.observe(None, t0 + s(5)), None);
        assert_eq!(w.observe(Some(1), t0 + s(9)), None);
        // Moving counters restart the clock.
        assert_eq!(w.observe(Some(2), t0 + s(18)), None);
        assert_eq!(w.observe(Some(2), t0 + s(27)), None);
        assert_eq!(w.observe(Some(2), t0 + s(28)), Some(s(10)));
        // A counter that disappears (no job statistics) does not count as progress.
        let mut w = StallWatch::new(s(10), t0);
        assert_eq!(w.observe(Some(7), t0), None);
        assert_eq!(w.observe(None, t0 + s(11)), Some(s(11)));
        // Before any counter, a stuck start is a stall too.
        let mut w = StallWatch::new(s(10), t0);
        assert_eq!(w.observe(None, t0 + s(10)), Some(s(10)));
    }
}
