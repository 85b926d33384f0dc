//! A token bucket: `rate` sends per second on average, bursts of `burst`.

use tokio::time::Instant;

/// Per-connection send budget.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(rate: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(rate).max(1));
        Self {
            rate: f64::from(rate.max(1)),
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Takes `n` tokens if there are enough.
    pub(crate) fn take(&mut self, n: u32) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        let n = f64::from(n);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn refills_at_the_rate_and_caps_at_the_burst() {
        let mut bucket = TokenBucket::new(10, 20);
        for _ in 0..20 {
            assert!(bucket.take(1));
        }
        assert!(!bucket.take(1));
        tokio::time::advance(Duration::from_millis(500)).await;
        for _ in 0..5 {
            assert!(bucket.take(1));
        }
        assert!(!bucket.take(1));
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..20 {
            assert!(bucket.take(1));
        }
        assert!(!bucket.take(1));
    }
}
