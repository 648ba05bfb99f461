//! Rate limits: fixed one-minute windows per client key.
//!
//! With Redis the count lives there (`INCRBY` on a key per window, aligned
//! to the wall-clock minute so every instance counts the same window), so
//! the limit holds across instances. A client's first request in a window
//! counts one; a busy client's instance reserves several counts at once
//! (doubling, up to a sixteenth of what is left) and hands them out from
//! memory, so a hot client costs a Redis round trip only now and then and
//! the limit is never exceeded. Without Redis — or while Redis is
//! unreachable — each instance counts in its own memory.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;

use crate::clock::SharedClock;

const WINDOW: Duration = Duration::from_secs(60);
/// After a Redis failure, count locally this long before trying Redis again.
const REDIS_PAUSE_SECS: u64 = 2;

fn unix_seconds(moment: DateTime<Utc>) -> u64 {
    u64::try_from(moment.timestamp()).unwrap_or(0)
}
/// Sweep stale keys once this many are held.
const SWEEP_THRESHOLD: usize = 10_000;
/// Most counts one instance reserves for a client in one Redis call.
const MAX_CHUNK: u64 = 256;

/// The outcome of one request against a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window resets (at least 1).
    pub reset_after_secs: u64,
}

/// A limit shared through Redis when there is one.
pub struct Limiter {
    scope: &'static str,
    clock: SharedClock,
    local: RateLimiter,
    redis: Option<ConnectionManager>,
    key_prefix: String,
    /// Unix seconds before which Redis is not tried again after a failure.
    redis_paused_until: std::sync::atomic::AtomicU64,
    reservations: Mutex<HashMap<String, Reservation>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("scope", &self.scope)
            .field("limit", &self.local.limit)
            .field("shared", &self.redis.is_some())
            .finish()
    }
}

impl Limiter {
    pub fn new(
        scope: &'static str,
        limit: u32,
        redis: Option<ConnectionManager>,
        key_prefix: &str,
        clock: SharedClock,
    ) -> Limiter {
        Limiter {
            scope,
            clock,
            local: RateLimiter::per_minute(limit),
            redis,
            key_prefix: key_prefix.to_owned(),
            redis_paused_until: std::sync::atomic::AtomicU64::new(0),
            reservations: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request for `key` and says whether it may proceed.
    pub async fn check(&self, key: &str) -> Decision {
        let moment = self.clock.now();
        let now = unix_seconds(moment);
        let paused = now
            < self
                .redis_paused_until
                .load(std::sync::atomic::Ordering::Relaxed);
        let decision = match self.redis.as_ref().filter(|_| !paused) {
            Some(redis) => match self.check_shared(redis, key, now).await {
                Ok(decision) => decision,
                Err(error) => {
                    tracing::warn!(error = %error, scope = self.scope, "rate limit store unavailable; counting locally");
                    self.redis_paused_until
                        .store(now + REDIS_PAUSE_SECS, std::sync::atomic::Ordering::Relaxed);
                    metrics::counter!("rate_limit_fallbacks_total", "scope" => self.scope)
                        .increment(1);
                    self.local.check_at(key, moment)
                }
            },
            None => {
                if paused {
                    metrics::counter!("rate_limit_fallbacks_total", "scope" => self.scope)
                        .increment(1);
                }
                self.local.check_at(key, moment)
            }
        };
        if !decision.allowed {
            metrics::counter!("rate_limited_requests_total", "scope" => self.scope).increment(1);
        }
        decision
    }

    async fn check_shared(
        &self,
        redis: &ConnectionManager,
        key: &str,
        now: u64,
    ) -> redis::RedisResult<Decision> {
        let window = now / WINDOW.as_secs();
        let limit = u64::from(self.local.limit);
        let decision = |count: u64| Decision {
            allowed: count <= limit,
            limit: self.local.limit,
            remaining: u32::try_from(limit.saturating_sub(count)).unwrap_or(0),
            reset_after_secs: (WINDOW.as_secs() - now % WINDOW.as_secs()).max(1),
        };
        let chunk = {
            let mut reservations = self
                .reservations
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match reservations
                .get_mut(key)
                .filter(|held| held.window == window)
            {
                Some(held) if held.next <= held.last => {
                    let count = held.next;
                    held.next += 1;
                    return Ok(decision(count));
                }
                // Busy client: reserve more at once, but never more than a
                // small share of what is left, so other instances can still
                // serve it up to (nearly) the full limit.
                Some(held) => (held.chunk * 2)
                    .min(limit.saturating_sub(held.last) / 16)
                    .clamp(1, MAX_CHUNK),
                None => 1,
            }
        };
        let redis_key = format!(
            "{}:ratelimit:{}:{key}:{window}",
            self.key_prefix, self.scope
        );
        let mut connection = redis.clone();
        let (total,): (u64,) = crate::redis::with_timeout(async {
            redis::pipe()
                .atomic()
                .incr(&redis_key, chunk)
                .expire(&redis_key, WINDOW.as_secs() as i64 + 1)
                .ignore()
                .query_async(&mut connection)
                .await
        })
        .await?;
        // This request is the first of the counts just reserved.
        let count = total - chunk + 1;
        let mut reservations = self
            .reservations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if reservations.len() >= SWEEP_THRESHOLD {
            reservations.retain(|_, held| held.window == window);
        }
        reservations.insert(
            key.to_owned(),
            Reservation {
                window,
                next: count + 1,
                last: total.min(limit),
                chunk,
            },
        );
        Ok(decision(count))
    }
}

/// Counts this instance reserved in Redis for one client and window and
/// may hand out without asking Redis again.
#[derive(Debug, Clone, Copy)]
struct Reservation {
    window: u64,
    /// The count the next request here gets.
    next: u64,
    /// The last reserved count that is still within the limit.
    last: u64,
    /// How many counts the last reservation took.
    chunk: u64,
}

/// A fixed-window limiter in process memory: each key gets `limit`
/// requests per minute from its first request. Stale windows are swept
/// now and then so memory stays bounded by recently active clients.
#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    windows: Mutex<HashMap<String, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: DateTime<Utc>,
    count: u32,
}

impl RateLimiter {
    pub fn per_minute(limit: u32) -> RateLimiter {
        RateLimiter {
            limit: limit.max(1),
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request for `key` at `now`.
    pub fn check_at(&self, key: &str, now: DateTime<Utc>) -> Decision {
        let elapsed_since =
            |started: DateTime<Utc>| (now - started).to_std().unwrap_or(Duration::ZERO);
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if windows.len() >= SWEEP_THRESHOLD {
            windows.retain(|_, window| elapsed_since(window.started) < WINDOW);
        }
        let window = windows.entry(key.to_owned()).or_insert(Window {
            started: now,
            count: 0,
        });
        if elapsed_since(window.started) >= WINDOW {
            *window = Window {
                started: now,
                count: 0,
            };
        }
        let allowed = window.count < self.limit;
        if allowed {
            window.count += 1;
        }
        let elapsed = elapsed_since(window.started);
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
        let start = chrono::Utc::now();
        assert!(limiter.check_at("a", start).allowed);
        assert!(limiter.check_at("a", start).allowed);
        let refused = limiter.check_at("a", start + Duration::from_secs(15));
        assert!(!refused.allowed);
        assert_eq!(refused.reset_after_secs, 45);
        assert!(limiter.check_at("b", start).allowed, "keys are independent");
        assert!(
            limiter
                .check_at("a", start + chrono::Duration::seconds(60))
                .allowed
        );
    }
}
