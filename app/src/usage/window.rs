//! The rate limit's arithmetic, free of I/O: a sliding window counted over sub-buckets,
//! **conservatively**, so that no rolling window of the limit's length ever holds more than
//! the limit.
//!
//! A window of `W` ms is cut into buckets of `W / 60` ms (at least 100 ms). An admission is
//! counted in the bucket it happens in. At time `t` the count is the sum of **every bucket that
//! overlaps `(t − W, t]`**, the oldest one whole even when only its tail is inside. A request is
//! admitted when that count is below the limit.
//!
//! Why it never over-admits: take any rolling window `(s − W, s]` and the last admission in it,
//! at `t ≤ s`. Every earlier admission of that window lies in `(s − W, t] ⊆ (t − W, t]`, so it
//! was counted at `t`; the count was below the limit, so the window holds at most the limit.
//! The price is the other direction: an admission near the start of the oldest bucket is still
//! counted up to one bucket (1/60 of the window) after it left the window, so a client that
//! spends its whole limit at once waits at most one bucket longer than a perfect sliding log
//! would make it. Memory: 61 counters per key, whatever the limit (a sliding log would keep one
//! timestamp per admission: 80 KB for a 10 000/h key).
//!
//! The same buckets are the unit of the multi-instance design (`usage::limiter`): an instance
//! leases tokens from the shared count for the current bucket (or, for a busy key, the next
//! one) and may spend them only while that bucket is current, which keeps the argument above
//! true across instances (`limiter::take_lease` gives the argument with leases).

use std::collections::VecDeque;

/// Sub-buckets per window.
pub const BUCKETS: i64 = 60;
/// Smallest bucket, so that a 1 s window does not cost a lease every 16 ms.
pub const MIN_BUCKET_MS: i64 = 100;

/// At most `limit` admissions in any rolling window of `window_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub limit: u64,
    pub window_ms: i64,
}

impl Limit {
    pub fn new(limit: u64, window_secs: i64) -> Limit {
        Limit {
            limit,
            window_ms: window_secs.max(1) * 1000,
        }
    }

    /// The window's length in whole seconds.
    pub fn window_secs(&self) -> i64 {
        self.window_ms / 1000
    }

    /// Whether `limit` requests per `window_secs` is no faster than this limit: neither more
    /// per second on average, nor a larger burst (a window's whole budget may be spent at
    /// once, so 2400 a day is not "100 an hour" though it averages the same). Together they
    /// keep any stretch of time within twice what this limit admits in it.
    pub fn allows_no_faster(&self, limit: u64, window_secs: i64) -> bool {
        limit <= self.limit
            && u128::from(limit) * self.window_ms.max(1) as u128
                <= u128::from(self.limit) * window_secs.max(1) as u128 * 1000
    }

    pub fn bucket_ms(&self) -> i64 {
        (self.window_ms / BUCKETS).max(MIN_BUCKET_MS)
    }

    /// Start of the bucket holding `t`.
    pub fn bucket_start(&self, t: i64) -> i64 {
        t.div_euclid(self.bucket_ms()) * self.bucket_ms()
    }

    /// Start of the bucket after the one holding `t`.
    pub fn next_bucket_start(&self, t: i64) -> i64 {
        self.bucket_start(t) + self.bucket_ms()
    }

    /// Buckets ending after this instant overlap the window ending at `t`: the oldest counted
    /// bucket is the one holding `t − W`.
    pub fn counted_from(&self, t: i64) -> i64 {
        self.bucket_start(t - self.window_ms)
    }
}

/// The answer for one request, with what the `RateLimit-*` headers say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub admitted: bool,
    pub limit: u64,
    /// Admissions left in the current window after this one.
    pub remaining: u64,
    /// Milliseconds until the count next goes down (a token comes back); for a refusal, until a
    /// retry can succeed.
    pub reset_ms: i64,
}

impl Decision {
    /// `RateLimit-Reset` and `Retry-After` in whole seconds, rounded up, at least 1 when
    /// anything is pending.
    pub fn reset_secs(&self) -> u64 {
        ((self.reset_ms.max(0) + 999) / 1000) as u64
    }
}

/// Admissions per bucket start, oldest first; buckets that no longer overlap any window that
/// ends now or later are dropped.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    buckets: VecDeque<(i64, u64)>,
}

impl Counts {
    /// Drops the buckets that can no longer be counted at `now` or later.
    fn prune(&mut self, limit: &Limit, now: i64) {
        let from = limit.counted_from(now);
        while self.buckets.front().is_some_and(|(start, _)| *start < from) {
            self.buckets.pop_front();
        }
    }

    /// The count at `now`: every bucket overlapping `(now − W, now]`.
    pub fn counted(&mut self, limit: &Limit, now: i64) -> u64 {
        self.prune(limit, now);
        self.buckets.iter().map(|(_, n)| n).sum()
    }

    /// Adds `n` admissions (or leased tokens) to the bucket holding `now`, in order (a lease
    /// taken ahead is a bucket after the current one).
    pub fn add(&mut self, limit: &Limit, now: i64, n: u64) {
        let start = limit.bucket_start(now);
        let at = self.buckets.partition_point(|(s, _)| *s < start);
        match self.buckets.get_mut(at) {
            Some((s, count)) if *s == start => *count += n,
            _ => self.buckets.insert(at, (start, n)),
        }
    }

    /// Milliseconds from `now` until the count drops to `target` or below, if nothing else is
    /// admitted: each bucket leaves the count when `now − W` passes its end.
    pub fn ms_until_at_most(&mut self, limit: &Limit, now: i64, target: u64) -> i64 {
        let mut count = self.counted(limit, now);
        if count <= target {
            return 0;
        }
        for (start, n) in &self.buckets {
            count = count.saturating_sub(*n);
            if count <= target {
                // The bucket [start, start + b) stops overlapping (t − W, t] once t − W ≥ its
                // end.
                return start + limit.bucket_ms() + limit.window_ms - now;
            }
        }
        limit.window_ms
    }

    /// Decides one request at `now` and counts it when admitted. The single-instance path;
    /// leases (several instances) use [`Counts::counted`] and [`Counts::add`] directly.
    pub fn admit(&mut self, limit: &Limit, now: i64) -> Decision {
        let used = self.counted(limit, now);
        if used < limit.limit {
            self.add(limit, now, 1);
            let remaining = limit.limit - used - 1;
            Decision {
                admitted: true,
                limit: limit.limit,
                remaining,
                reset_ms: self.ms_until_at_most(limit, now, used),
            }
        } else {
            Decision {
                admitted: false,
                limit: limit.limit,
                remaining: 0,
                reset_ms: self.ms_until_at_most(limit, now, limit.limit - 1).max(1),
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.iter().all(|(_, n)| *n == 0)
    }
}

/// The most admissions in any rolling window `(s − W, s]` of a sorted schedule of admission
/// times (ms): what "never over-admit" bounds, checked by the property tests here and in
/// `server/tests/usage.rs`.
pub fn max_in_any_window(admitted: &[i64], window_ms: i64) -> usize {
    let (mut best, mut from) = (0, 0);
    for (to, t) in admitted.iter().enumerate() {
        while admitted[from] <= t - window_ms {
            from += 1;
        }
        best = best.max(to - from + 1);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_rate_is_no_faster_when_neither_its_average_nor_its_burst_is_more() {
        let own = Limit::new(100, 3600);
        assert!(own.allows_no_faster(100, 3600) && own.allows_no_faster(1, 36));
        assert!(own.allows_no_faster(100, 86_400) && own.allows_no_faster(0, 1));
        assert!(!own.allows_no_faster(101, 3600) && !own.allows_no_faster(1, 35));
        // The same average with a bigger window is a bigger burst: 2400 at once.
        assert!(!own.allows_no_faster(2400, 86_400) && !own.allows_no_faster(200, 7200));
        assert!(!own.allows_no_faster(u64::MAX, 1));
        assert_eq!(own.window_secs(), 3600);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Random schedules (bursts, quiet gaps, several requests in the same millisecond)
        /// never get more than the limit admitted in any rolling window.
        #[test]
        fn never_more_than_the_limit_in_any_rolling_window(
            limit in 1u64..40,
            window_secs in 1i64..8,
            gaps in proptest::collection::vec(prop_oneof![Just(0i64), 0i64..50, 0i64..2_000, 0i64..20_000], 1..600),
        ) {
            let l = Limit::new(limit, window_secs);
            let mut counts = Counts::default();
            let mut now = 1_700_000_000_000;
            let mut admitted = Vec::new();
            for gap in gaps {
                now += gap;
                let d = counts.admit(&l, now);
                prop_assert!(d.remaining <= limit);
                if d.admitted {
                    admitted.push(now);
                } else {
                    prop_assert!(d.reset_ms >= 1 && d.reset_ms <= l.window_ms + l.bucket_ms());
                    // What Retry-After promises holds: one request at that moment is admitted.
                    let mut probe = counts.clone();
                    prop_assert!(probe.admit(&l, now + d.reset_ms).admitted);
                }
            }
            prop_assert!(max_in_any_window(&admitted, l.window_ms) as u64 <= limit);
        }

        /// The conservative count costs at most one bucket: a client that waits a full window
        /// plus one bucket after its last admission always gets the whole limit again.
        #[test]
        fn the_whole_limit_comes_back_after_a_window_and_a_bucket(
            limit in 1u64..30,
            window_secs in 1i64..5,
            start in 0i64..100_000,
        ) {
            let l = Limit::new(limit, window_secs);
            let mut counts = Counts::default();
            let t0 = 1_700_000_000_000 + start;
            for _ in 0..limit { prop_assert!(counts.admit(&l, t0).admitted); }
            prop_assert!(!counts.admit(&l, t0).admitted);
            let later = t0 + l.window_ms + l.bucket_ms();
            for _ in 0..limit { prop_assert!(counts.admit(&l, later).admitted); }
        }
    }

    #[test]
    fn exactly_the_limit_at_once_then_refusals_with_a_reset() {
        let l = Limit::new(100, 3600);
        let mut counts = Counts::default();
        let t = 1_700_000_000_000;
        let decisions: Vec<Decision> = (0..150).map(|_| counts.admit(&l, t)).collect();
        assert_eq!(decisions.iter().filter(|d| d.admitted).count(), 100);
        assert_eq!(decisions[0].remaining, 99);
        assert_eq!(decisions[99].remaining, 0);
        let refused = decisions[100];
        assert!(!refused.admitted);
        // The bucket of t leaves the count an hour after its end: at most an hour and a minute.
        assert!(refused.reset_ms > 3_600_000 - 1 && refused.reset_ms <= 3_660_000);
        assert_eq!(l.bucket_ms(), 60_000);
    }

    #[test]
    fn small_windows_use_the_minimum_bucket() {
        assert_eq!(Limit::new(10, 1).bucket_ms(), MIN_BUCKET_MS);
        assert_eq!(Limit::new(10, 86_400).bucket_ms(), 1_440_000);
    }
}
