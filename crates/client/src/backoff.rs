//! Reconnect delays: before attempt n, `min(15 s, 0.5 s·2^n)·U(0.5, 1)`.

use std::time::Duration;

/// Connected this long, the attempt counter starts over.
pub const RESET_AFTER: Duration = Duration::from_secs(30);

/// The delay before attempt `n` (0-based) for a jitter factor `u` in [0.5, 1).
pub fn delay(n: u32, u: f64) -> Duration {
    let base = (0.5 * 2f64.powi(n.min(16) as i32)).min(15.0);
    Duration::from_secs_f64(base * u.clamp(0.5, 1.0))
}

/// A uniform draw from [0.5, 1) from the OS random source.
pub fn jitter() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.75;
    }
    let unit = (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64;
    0.5 + unit / 2.0
}

/// The attempt counter and its reset rule.
#[derive(Debug, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// The next delay; counts the attempt.
    pub fn next_delay(&mut self) -> Duration {
        let d = delay(self.attempt, jitter());
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// A connection ended after being up for `connected`: long enough, and the count starts over.
    pub fn connection_ended(&mut self, connected: Duration) {
        if connected >= RESET_AFTER {
            self.attempt = 0;
        }
    }

    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_formula() {
        assert_eq!(delay(0, 1.0), Duration::from_millis(500));
        assert_eq!(delay(0, 0.5), Duration::from_millis(250));
        assert_eq!(delay(3, 1.0), Duration::from_secs(4));
        assert_eq!(delay(5, 1.0), Duration::from_secs(15));
        assert_eq!(delay(40, 0.5), Duration::from_secs_f64(7.5));
        for _ in 0..100 {
            let u = jitter();
            assert!((0.5..1.0).contains(&u));
        }
    }

    #[test]
    fn counter_resets_after_a_long_connection() {
        let mut b = Backoff::default();
        b.next_delay();
        b.next_delay();
        assert_eq!(b.attempt(), 2);
        b.connection_ended(Duration::from_secs(29));
        assert_eq!(b.attempt(), 2);
        b.connection_ended(RESET_AFTER);
        assert_eq!(b.attempt(), 0);
        assert!(b.next_delay() <= Duration::from_millis(500));
    }
}
