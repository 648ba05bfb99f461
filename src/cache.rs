//! Cache-aside for hot reads (the user behind a token, loan details), in
//! Redis when `REDIS_URL` is set — shared by every instance — and in
//! process memory otherwise.
//!
//! Invalidation uses generations rather than deletes. Every entry is stored
//! under `value:{kind}:{id}:{generation}`; a write bumps the generation of
//! what it changed, after its transaction commits. A reader that raced
//! with the write and loaded the old row stores it under the old
//! generation, which nobody reads again — so once a write has returned, no
//! reader on any instance can be served what it replaced. Entries also
//! expire after a TTL.
//!
//! Redis failing is never an error for the client: the cache is bypassed
//! (the database answers), the failure is counted, and the next request
//! tries Redis again.

use std::future::Future;
use std::time::Duration;

use redis::aio::ConnectionManager;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// How long a cached value lives.
pub const ENTRY_TTL: Duration = Duration::from_secs(60);
/// Generations outlive every entry they name.
const GENERATION_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest a cache call may take before it is treated as a miss.
const REDIS_TIMEOUT: Duration = Duration::from_millis(300);

/// What a cached value is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheKind {
    /// The id and role of a user, for authentication.
    User,
    /// A loan with its schedule, as served by `GET /loans/{id}`.
    Loan,
}

impl CacheKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheKind::User => "user",
            CacheKind::Loan => "loan",
        }
    }
}

#[derive(Clone)]
pub struct Cache {
    store: Store,
    /// Prepended to every Redis key (`REDIS_KEY_PREFIX`).
    prefix: String,
}

#[derive(Clone)]
enum Store {
    Local {
        values: moka::future::Cache<String, String>,
        generations: moka::future::Cache<String, u64>,
    },
    Redis(ConnectionManager),
}

impl Cache {
    /// An in-process cache bounded to `capacity` entries.
    pub fn local(capacity: u64) -> Cache {
        Cache {
            prefix: String::new(),
            store: Store::Local {
                values: moka::future::Cache::builder()
                    .max_capacity(capacity)
                    .time_to_live(ENTRY_TTL)
                    .build(),
                generations: moka::future::Cache::builder()
                    .max_capacity(capacity)
                    .time_to_live(GENERATION_TTL)
                    .build(),
            },
        }
    }

    pub fn redis(connection: ConnectionManager, prefix: &str) -> Cache {
        Cache {
            store: Store::Redis(connection),
            prefix: prefix.to_owned(),
        }
    }

    pub fn is_shared(&self) -> bool {
        matches!(self.store, Store::Redis(_))
    }

    /// The cached value of `(kind, id)`, or what `load` returns (stored for
    /// next time). `load` returning `None` (nothing there) is not cached.
    pub async fn get_or_load<T, E, F, Fut>(
        &self,
        kind: CacheKind,
        id: Uuid,
        load: F,
    ) -> Result<Option<T>, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let generation = match self.generation(kind, id).await {
            Ok(generation) => generation,
            Err(error) => {
                record_result(kind, "error");
                tracing::warn!(error = %error, "cache unavailable; reading through");
                return load().await;
            }
        };
        let key = self.value_key(kind, id, generation);
        match self.get(&key).await {
            Ok(Some(text)) => {
                if let Ok(value) = serde_json::from_str(&text) {
                    record_result(kind, "hit");
                    return Ok(Some(value));
                }
            }
            Ok(None) => {}
            Err(error) => {
                record_result(kind, "error");
                tracing::warn!(error = %error, "cache unavailable; reading through");
                return load().await;
            }
        }
        record_result(kind, "miss");
        let loaded = load().await?;
        if let Some(value) = &loaded
            && let Ok(text) = serde_json::to_string(value)
            && let Err(error) = self.set(&key, text).await
        {
            tracing::warn!(error = %error, "cache unavailable; value not stored");
        }
        Ok(loaded)
    }

    /// Makes every cached value of `(kind, id)` unreachable. Call after the
    /// transaction that changed it has committed.
    pub async fn invalidate(&self, kind: CacheKind, id: Uuid) {
        let key = self.generation_key(kind, id);
        let result = match &self.store {
            Store::Local { generations, .. } => {
                let next = generations.get(&key).await.unwrap_or(0) + 1;
                generations.insert(key, next).await;
                Ok(())
            }
            Store::Redis(connection) => {
                let mut connection = connection.clone();
                let bump = async {
                    redis::pipe()
                        .atomic()
                        .incr(&key, 1)
                        .ignore()
                        .expire(&key, GENERATION_TTL.as_secs() as i64)
                        .ignore()
                        .query_async::<()>(&mut connection)
                        .await
                };
                with_timeout(bump).await
            }
        };
        if let Err(error) = result {
            // Entries of the old generation expire within ENTRY_TTL.
            tracing::warn!(error = %error, kind = kind.as_str(), %id, "cache invalidation failed");
            metrics::counter!("cache_errors_total", "operation" => "invalidate").increment(1);
        }
    }

    async fn generation(&self, kind: CacheKind, id: Uuid) -> Result<u64, redis::RedisError> {
        let key = self.generation_key(kind, id);
        match &self.store {
            Store::Local { generations, .. } => Ok(generations.get(&key).await.unwrap_or(0)),
            Store::Redis(connection) => {
                let mut connection = connection.clone();
                let value: Option<u64> = with_timeout(async {
                    redis::cmd("GET")
                        .arg(&key)
                        .query_async(&mut connection)
                        .await
                })
                .await?;
                Ok(value.unwrap_or(0))
            }
        }
    }

    async fn get(&self, key: &str) -> Result<Option<String>, redis::RedisError> {
        match &self.store {
            Store::Local { values, .. } => Ok(values.get(key).await),
            Store::Redis(connection) => {
                let mut connection = connection.clone();
                with_timeout(async {
                    redis::cmd("GET")
                        .arg(key)
                        .query_async(&mut connection)
                        .await
                })
                .await
            }
        }
    }

    async fn set(&self, key: &str, value: String) -> Result<(), redis::RedisError> {
        match &self.store {
            Store::Local { values, .. } => {
                values.insert(key.to_owned(), value).await;
                Ok(())
            }
            Store::Redis(connection) => {
                let mut connection = connection.clone();
                with_timeout(async {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(value)
                        .arg("EX")
                        .arg(ENTRY_TTL.as_secs())
                        .query_async::<()>(&mut connection)
                        .await
                })
                .await
            }
        }
    }
}

impl Cache {
    fn generation_key(&self, kind: CacheKind, id: Uuid) -> String {
        format!("{}:cache:gen:{}:{id}", self.prefix, kind.as_str())
    }

    fn value_key(&self, kind: CacheKind, id: Uuid, generation: u64) -> String {
        format!(
            "{}:cache:value:{}:{id}:{generation}",
            self.prefix,
            kind.as_str()
        )
    }
}

fn record_result(kind: CacheKind, result: &'static str) {
    metrics::counter!("cache_requests_total", "cache" => kind.as_str(), "result" => result)
        .increment(1);
}

/// Runs a Redis call with a short deadline, so a hung Redis slows no
/// request by more than [`REDIS_TIMEOUT`].
pub async fn with_timeout<T>(
    call: impl Future<Output = redis::RedisResult<T>>,
) -> redis::RedisResult<T> {
    match tokio::time::timeout(REDIS_TIMEOUT, call).await {
        Ok(result) => result,
        Err(_) => Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "redis call timed out",
        ))),
    }
}

/// A connection manager that connects lazily and reconnects by itself,
/// failing calls fast while Redis is away.
pub fn connect(url: &str) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(1));
    ConnectionManager::new_lazy_with_config(client, config)
}

/// Whether Redis answers `PING`.
pub async fn ping(connection: &ConnectionManager) -> bool {
    let mut connection = connection.clone();
    with_timeout(async {
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
    })
    .await
    .is_ok()
}
