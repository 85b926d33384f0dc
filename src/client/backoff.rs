//! Exponential backoff with jitter, and a token bucket for the send rate.

use std::time::Duration;

use tokio::time::Instant;

/// Delays that double from `initial` up to `max`; each delay is drawn
/// uniformly from its upper half so that many clients spread out.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial: initial.max(Duration::from_millis(1)),
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// The next delay.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = delay_for(self.initial, self.max, self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// Back to the first delay (after a success).
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// The jittered delay of retry number `attempt` (0-based).
pub(crate) fn delay_for(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
    let ceiling = initial.saturating_mul(factor).min(max);
    let half = ceiling / 2;
    let spread = u64::try_from(half.as_micros()).unwrap_or(u64::MAX);
    half + Duration::from_micros(rand::random_range(0..=spread))
}

/// Paces sends to the server's `messages_per_second`.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket; a rate of 0 means unlimited.
    pub(crate) fn new(per_second: u32, now: Instant) -> Self {
        let rate = f64::from(per_second);
        Self {
            rate,
            burst: rate.max(1.0),
            tokens: rate.max(1.0),
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next token will be there.
    pub(crate) fn next_token_at(&self) -> Instant {
        if self.rate <= 0.0 || self.tokens >= 1.0 {
            return self.last;
        }
        let missing = 1.0 - self.tokens;
        self.last + Duration::from_secs_f64(missing / self.rate)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_jitter_and_stop_at_the_maximum() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for attempt in 0..10 {
            let ceiling = (initial * 2u32.pow(attempt)).min(max);
            let delay = delay_for(initial, max, attempt);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{attempt}: {delay:?}"
            );
        }
        assert!(delay_for(initial, max, u32::MAX) <= max);
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_a_burst_then_paces() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, start);
        for _ in 0..10 {
            assert!(bucket.take(start));
        }
        assert!(!bucket.take(start));
        let next = bucket.next_token_at();
        assert_eq!(next - start, Duration::from_millis(100));
        assert!(bucket.take(next));
        assert!(TokenBucket::new(0, start).take(start));
    }
}
