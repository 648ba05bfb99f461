//! Which database answers a read when a replica (`DATABASE_READ_URL`) is
//! configured.
//!
//! The rule: a read of one record by its id (`/users/me`, `/users/{id}`,
//! profiles, `/loans/{id}`) always reads the primary (through the cache).
//! Lists read the replica — except for `READ_YOUR_WRITES_SECS` (default 10)
//! after the requesting user's own successful write, when they read the
//! primary too. So a client always sees its own writes, while the bulk of
//! list traffic goes to the replica. The time of each user's last write is
//! kept in Redis when there is one (so the rule holds whichever instance
//! answers), else in process memory.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;

use uuid::Uuid;

/// Remembers when each user last wrote.
pub struct RecentWriters {
    window: Duration,
    redis: Option<(ConnectionManager, String)>,
    local: Mutex<HashMap<Uuid, DateTime<Utc>>>,
}

/// Sweep the local map once it holds this many users.
const LOCAL_SWEEP: usize = 50_000;

impl RecentWriters {
    pub fn new(
        window: Duration,
        redis: Option<ConnectionManager>,
        key_prefix: &str,
    ) -> RecentWriters {
        RecentWriters {
            window,
            redis: redis.map(|connection| (connection, key_prefix.to_owned())),
            local: Mutex::new(HashMap::new()),
        }
    }

    fn window(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.window).unwrap_or(chrono::Duration::zero())
    }

    /// Notes that `user` wrote at `now`.
    pub async fn mark(&self, user: Uuid, now: DateTime<Utc>) {
        {
            let mut local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
            if local.len() >= LOCAL_SWEEP {
                let window = self.window();
                local.retain(|_, wrote| now - *wrote < window);
            }
            local.insert(user, now);
        }
        if let Some((connection, prefix)) = &self.redis {
            let mut connection = connection.clone();
            let key = format!("{prefix}:wrote:{user}");
            let ttl = self.window.as_secs() + 60;
            let stored: redis::RedisResult<()> = crate::redis::with_timeout(async {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(now.timestamp_millis())
                    .arg("EX")
                    .arg(ttl)
                    .query_async(&mut connection)
                    .await
            })
            .await;
            if let Err(error) = stored {
                tracing::warn!(error = %error, "cannot record a write for read routing");
            }
        }
    }

    /// Whether `user` wrote within the window before `now`.
    pub async fn wrote_recently(&self, user: Uuid, now: DateTime<Utc>) -> bool {
        let window = self.window();
        let local = self
            .local
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&user)
            .copied();
        if local.is_some_and(|wrote| now - wrote < window) {
            return true;
        }
        let Some((connection, prefix)) = &self.redis else {
            return false;
        };
        let mut connection = connection.clone();
        let key = format!("{prefix}:wrote:{user}");
        let stored: redis::RedisResult<Option<i64>> = crate::redis::with_timeout(async {
            redis::cmd("GET")
                .arg(&key)
                .query_async(&mut connection)
                .await
        })
        .await;
        match stored {
            Ok(Some(millis)) => {
                DateTime::from_timestamp_millis(millis).is_some_and(|wrote| now - wrote < window)
            }
            Ok(None) => false,
            // Not knowing, read the primary: never a stale answer.
            Err(_) => true,
        }
    }
}
