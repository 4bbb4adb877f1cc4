//! Backoff for pages the application refused for now (rate limits, outages):
//! exponential with full jitter, never shorter than what the application
//! asked for, and bounded in attempts and in total waiting.

use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Total time one page may spend waiting between attempts.
    pub max_total_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_total_wait: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (1-based), or None when the
    /// budget is spent. `jitter` is a draw in [0, 1).
    pub fn delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        waited: Duration,
        jitter: f64,
    ) -> Option<Duration> {
        if attempt > self.max_retries {
            return None;
        }
        let exp = self
            .base_delay
            .saturating_mul(
                1u32.checked_shl(attempt.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max_delay);
        // Full jitter spreads many clients apart; keep at least half the
        // step so a retry is never immediate.
        let jittered = exp.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
        let delay = match retry_after {
            Some(ra) => ra.max(jittered.min(ra + self.base_delay)),
            None => jittered,
        };
        if waited + delay > self.max_total_wait {
            return None;
        }
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p() -> RetryPolicy {
        RetryPolicy {
            max_retries: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_total_wait: Duration::from_secs(3),
        }
    }

    #[test]
    fn grows_exponentially_up_to_the_cap() {
        let d: Vec<_> = (1..=5)
            .map(|a| p().delay(a, None, Duration::ZERO, 1.0).unwrap())
            .collect();
        assert_eq!(d[0], Duration::from_millis(100));
        assert_eq!(d[1], Duration::from_millis(200));
        assert_eq!(d[2], Duration::from_millis(400));
        assert_eq!(d[3], Duration::from_millis(800));
        assert_eq!(d[4], Duration::from_secs(1));
    }

    #[test]
    fn jitter_keeps_at_least_half() {
        assert_eq!(
            p().delay(2, None, Duration::ZERO, 0.0).unwrap(),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn retry_after_is_honoured() {
        let d = p()
            .delay(1, Some(Duration::from_secs(2)), Duration::ZERO, 0.0)
            .unwrap();
        assert!(d >= Duration::from_secs(2));
    }

    #[test]
    fn attempts_and_total_wait_are_bounded() {
        assert!(p().delay(6, None, Duration::ZERO, 0.5).is_none());
        assert!(p()
            .delay(1, Some(Duration::from_secs(5)), Duration::ZERO, 0.5)
            .is_none());
        assert!(p()
            .delay(3, None, Duration::from_millis(2900), 1.0)
            .is_none());
    }
}
