//! The one backoff schedule every retry loop of the crate waits by:
//! `Backoff` gives the wait before retry `n` (`first · 2ⁿ`, at most `cap`,
//! optionally jittered). Loops keep their own attempt bounds and log lines,
//! since those differ (a lost lease is never retried, a database at start-up
//! is waited for forever); GitHub's rate-limit waits are
//! `scm::github::RetryPolicy::next_wait`, on top of this schedule.
//!
//! **Invariant:** a wait never exceeds its ceiling (`ceiling(n)`, at most
//! `cap`), except with `Jitter::UpToHalfMore`, which adds at most half the
//! ceiling on top; no arithmetic here overflows, whatever `n`.

use std::time::Duration;

use rand::Rng;

/// How a wait is randomised, so that many clients failing together do not
/// retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// The ceiling itself.
    None,
    /// Uniform between zero and the ceiling ("full jitter").
    Full,
    /// The ceiling plus up to half of it.
    UpToHalfMore,
}

/// A doubling wait: `first`, `2·first`, `4·first`, … up to `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    jitter: Jitter,
}

impl Backoff {
    /// Doubling from `first`, without a cap or jitter.
    pub const fn doubling(first: Duration) -> Backoff {
        Backoff {
            first,
            cap: Duration::MAX,
            jitter: Jitter::None,
        }
    }

    /// The same schedule, never waiting longer than `cap` (before jitter).
    pub const fn capped(self, cap: Duration) -> Backoff {
        Backoff { cap, ..self }
    }

    pub const fn jittered(self, jitter: Jitter) -> Backoff {
        Backoff { jitter, ..self }
    }

    /// The wait before retry `n` (0 for the first retry), without jitter.
    pub fn ceiling(&self, n: u32) -> Duration {
        self.first.saturating_mul(2u32.saturating_pow(n.min(31))).min(self.cap)
    }

    /// The wait before retry `n` (0 for the first retry).
    pub fn delay(&self, n: u32) -> Duration {
        let ceiling = self.ceiling(n);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        match self.jitter {
            Jitter::None => ceiling,
            // At least 1 ms of range, as the push loop always had.
            Jitter::Full => Duration::from_millis(rand::thread_rng().gen_range(0..=millis.max(1))),
            Jitter::UpToHalfMore => {
                ceiling.saturating_add(Duration::from_millis(rand::thread_rng().gen_range(0..=millis / 2)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn doubles_from_the_first_wait_up_to_the_cap() {
        let b = Backoff::doubling(MS(200)).capped(Duration::from_secs(5));
        let waits: Vec<_> = (0..7).map(|n| b.delay(n)).collect();
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 5000, 5000].map(MS));
        assert_eq!(Backoff::doubling(MS(500)).delay(3), MS(4000));
    }

    #[test]
    fn huge_retry_numbers_do_not_overflow() {
        assert_eq!(Backoff::doubling(MS(100)).delay(u32::MAX), MS(100) * 2u32.pow(31));
        assert_eq!(Backoff::doubling(Duration::MAX).delay(5), Duration::MAX);
        let capped = Backoff::doubling(MS(100)).capped(MS(10_000));
        assert_eq!(capped.delay(1_000), MS(10_000));
    }

    #[test]
    fn jitter_stays_within_its_bounds() {
        let full = Backoff::doubling(MS(50)).capped(MS(2000)).jittered(Jitter::Full);
        let more = Backoff::doubling(MS(200))
            .capped(Duration::from_secs(30))
            .jittered(Jitter::UpToHalfMore);
        let mut full_seen = std::collections::BTreeSet::new();
        for n in 0..60 {
            let w = full.delay(n);
            assert!(w <= full.ceiling(n) && w <= MS(2000), "{w:?} at {n}");
            full_seen.insert(w);
            let w = more.delay(n);
            assert!(w >= more.ceiling(n) && w <= more.ceiling(n) * 3 / 2, "{w:?} at {n}");
        }
        // Jittered waits vary (60 draws up to 2 s being all equal is not chance).
        assert!(full_seen.len() > 1);
        assert!(Backoff::doubling(Duration::ZERO).jittered(Jitter::Full).delay(0) <= MS(1));
    }
}
