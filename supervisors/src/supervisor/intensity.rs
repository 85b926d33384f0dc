//! The restart window and the restart backoff.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::spec::Backoff;
use crate::rng::SplitMix;

/// OTP's restart intensity check in constant time.
///
/// OTP keeps every restart of the last period in a list and walks it on
/// each restart, which slows down under a restart storm. Whether one more
/// restart exceeds the intensity depends only on the last `intensity`
/// restarts: if all of them lie within the period, the new one is one too
/// many. So a ring of at most `intensity` timestamps, oldest first, answers
/// exactly the same: the check looks at its length only.
#[derive(Debug)]
pub(crate) struct RestartWindow {
    stamps: VecDeque<Instant>,
    intensity: usize,
    period: Duration,
}

impl RestartWindow {
    pub(crate) fn new(intensity: u32, period: Duration) -> Self {
        Self {
            stamps: VecDeque::new(),
            intensity: intensity as usize,
            period,
        }
    }

    /// Records a restart at `now`; false when it exceeds the intensity.
    ///
    /// A restart exactly `period` ago still counts, as in OTP.
    pub(crate) fn add(&mut self, now: Instant) -> bool {
        if self.intensity == 0 {
            return false;
        }
        // Forget restarts that left the window; each is dropped once, so
        // this is constant time amortized, and the ring never holds more
        // than the restarts of one period (at most `intensity`).
        while let Some(&oldest) = self.stamps.front()
            && now.saturating_duration_since(oldest) > self.period
        {
            self.stamps.pop_front();
        }
        if self.stamps.len() >= self.intensity {
            return false;
        }
        self.stamps.push_back(now);
        true
    }
}

/// The state of an exponential restart backoff.
#[derive(Debug)]
pub(crate) struct BackoffState {
    cfg: Backoff,
    level: u32,
    last: Option<Instant>,
    rng: SplitMix,
}

impl BackoffState {
    pub(crate) fn new(cfg: Backoff, seed: u64) -> Self {
        Self {
            cfg,
            level: 0,
            last: None,
            rng: SplitMix::new(seed),
        }
    }

    /// The delay before the restart happening at `now`.
    pub(crate) fn next_delay(&mut self, now: Instant) -> Duration {
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) >= self.cfg.reset_after)
        {
            self.level = 0;
        }
        self.last = Some(now);
        let factor = 1u32.checked_shl(self.level).unwrap_or(u32::MAX);
        let base = self.cfg.initial.saturating_mul(factor).min(self.cfg.max);
        self.level = (self.level + 1).min(31);
        let scale = 1.0 - self.cfg.jitter * self.rng.next_f64();
        base.mul_f64(scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceeds_at_exactly_intensity_plus_one() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(3, Duration::from_secs(5));
        assert!(w.add(t0));
        assert!(w.add(t0 + Duration::from_secs(1)));
        assert!(w.add(t0 + Duration::from_secs(2)));
        assert!(!w.add(t0 + Duration::from_secs(3)));
    }

    #[test]
    fn old_restarts_leave_the_window() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(2, Duration::from_secs(5));
        assert!(w.add(t0));
        assert!(w.add(t0 + Duration::from_secs(1)));
        assert!(w.add(t0 + Duration::from_millis(5001)));
        assert!(!w.add(t0 + Duration::from_millis(5002)));
    }

    #[test]
    fn a_restart_exactly_one_period_ago_still_counts() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(1, Duration::from_secs(5));
        assert!(w.add(t0));
        assert!(!w.add(t0 + Duration::from_secs(5)));
    }

    #[test]
    fn intensity_zero_never_restarts() {
        let mut w = RestartWindow::new(0, Duration::from_secs(5));
        assert!(!w.add(Instant::now()));
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let cfg = Backoff::new(Duration::from_millis(10), Duration::from_millis(50))
            .jitter(0.0)
            .reset_after(Duration::from_secs(1));
        let mut b = BackoffState::new(cfg, 1);
        let t0 = Instant::now();
        let ms = |d: Duration| d.as_millis();
        assert_eq!(ms(b.next_delay(t0)), 10);
        assert_eq!(ms(b.next_delay(t0)), 20);
        assert_eq!(ms(b.next_delay(t0)), 40);
        assert_eq!(ms(b.next_delay(t0)), 50);
        assert_eq!(ms(b.next_delay(t0 + Duration::from_secs(2))), 10);
    }

    #[test]
    fn jitter_only_shortens() {
        let cfg = Backoff::new(Duration::from_millis(100), Duration::from_millis(100)).jitter(0.5);
        let mut b = BackoffState::new(cfg, 7);
        for _ in 0..100 {
            let d = b.next_delay(Instant::now());
            assert!(d <= Duration::from_millis(100) && d >= Duration::from_millis(50));
        }
    }
}
