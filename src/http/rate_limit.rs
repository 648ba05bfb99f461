//! A fixed-window rate limiter kept in process memory.
//!
//! Each key gets `limit` requests per window of one minute; the window
//! starts at the key's first request. Stale windows are swept now and then
//! so that memory stays bounded by the number of recently active clients.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Sweep stale keys once this many are held.
const SWEEP_THRESHOLD: usize = 10_000;

#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    windows: Mutex<HashMap<String, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
}

/// The outcome of one request against a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window resets (at least 1).
    pub reset_after_secs: u64,
}

impl RateLimiter {
    pub fn per_minute(limit: u32) -> RateLimiter {
        RateLimiter {
            limit: limit.max(1),
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request for `key` and says whether it may proceed.
    pub fn check(&self, key: &str) -> Decision {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Decision {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if windows.len() >= SWEEP_THRESHOLD {
            windows.retain(|_, window| now.duration_since(window.started) < WINDOW);
        }
        let window = windows.entry(key.to_owned()).or_insert(Window {
            started: now,
            count: 0,
        });
        if now.duration_since(window.started) >= WINDOW {
            *window = Window {
                started: now,
                count: 0,
            };
        }
        let allowed = window.count < self.limit;
        if allowed {
            window.count += 1;
        }
        let elapsed = now.duration_since(window.started);
        let reset_after_secs = WINDOW.saturating_sub(elapsed).as_secs().max(1);
        Decision {
            allowed,
            limit: self.limit,
            remaining: self.limit - window.count,
            reset_after_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_limit_then_refuses_until_the_window_ends() {
        let limiter = RateLimiter::per_minute(2);
        let start = Instant::now();
        assert!(limiter.check_at("a", start).allowed);
        assert!(limiter.check_at("a", start).allowed);
        let refused = limiter.check_at("a", start + Duration::from_secs(15));
        assert!(!refused.allowed);
        assert_eq!(refused.reset_after_secs, 45);
        assert!(limiter.check_at("b", start).allowed, "keys are independent");
        assert!(limiter.check_at("a", start + WINDOW).allowed);
    }
}
