//! Cache-aside for hot reads (the user behind a token, loan details), in
//! Redis when `REDIS_URL` is set — shared by every instance — and in
//! process memory otherwise.
//!
//! Invalidation uses generations rather than deletes. Every entry is
//! stored under `value:{kind}:{id}:{epoch}:{generation}`; a write bumps the
//! generation of what it changed, after its transaction commits. A reader
//! that raced with the write and loaded the old row stores it under the
//! old generation, which nobody reads again — so once a write has returned,
//! no reader on any instance is served what it replaced. Entries also
//! expire after a TTL.
//!
//! If a bump fails (Redis away at that moment), this instance stops using
//! the cache and, as soon as Redis answers again, bumps the shared epoch,
//! which makes every entry written before unreachable on every instance;
//! only then does it use the cache again.
//!
//! Redis failing is never an error for the client: the cache is bypassed
//! (the database answers), the failure is counted, and after a short pause
//! Redis is tried again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// How long a cached value lives.
pub const ENTRY_TTL: Duration = Duration::from_secs(60);
/// Generations outlive every entry they name.
const GENERATION_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest a Redis call may take before it counts as failed.
const REDIS_TIMEOUT: Duration = Duration::from_millis(300);
/// After a failure, Redis is left alone this long.
const REDIS_PAUSE: Duration = Duration::from_secs(2);
/// How often a lost invalidation retries moving the epoch.
const EPOCH_RETRY: Duration = Duration::from_millis(250);

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
}

#[derive(Clone)]
enum Store {
    Local(Arc<LocalStore>),
    Redis(Arc<RedisStore>),
}

/// In-process: values in moka; generations in a plain map (never evicted
/// while they matter — see [`LocalStore::bump`]).
struct LocalStore {
    values: moka::future::Cache<String, String>,
    generations: Mutex<HashMap<String, (u64, Instant)>>,
}

/// Generations are dropped only long after their last bump, when every
/// value stored under an older generation has expired.
const LOCAL_GENERATION_KEEP: Duration = Duration::from_secs(3 * 60);
const LOCAL_GENERATION_SWEEP: usize = 100_000;

impl LocalStore {
    fn generation(&self, key: &str) -> u64 {
        let generations = self
            .generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        generations
            .get(key)
            .map_or(0, |(generation, _)| *generation)
    }

    fn bump(&self, key: String) {
        let mut generations = self
            .generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if generations.len() >= LOCAL_GENERATION_SWEEP {
            generations
                .retain(|_, (_, bumped)| now.duration_since(*bumped) < LOCAL_GENERATION_KEEP);
        }
        let entry = generations.entry(key).or_insert((0, now));
        *entry = (entry.0 + 1, now);
    }
}

struct RedisStore {
    connection: ConnectionManager,
    prefix: String,
    /// Unix millis before which Redis is not tried again.
    paused_until: AtomicU64,
    /// A bump failed: the epoch must move before the cache is used again.
    epoch_stale: AtomicBool,
}

impl RedisStore {
    fn available(&self) -> bool {
        unix_millis() >= self.paused_until.load(Ordering::Relaxed)
    }

    fn failed(&self, error: &redis::RedisError) {
        let until = unix_millis() + REDIS_PAUSE.as_millis() as u64;
        self.paused_until.store(until, Ordering::Relaxed);
        tracing::warn!(error = %error, "redis unavailable; pausing its use");
    }

    fn key(&self, part: &str) -> String {
        format!("{}:cache:{part}", self.prefix)
    }

    /// Moves the shared epoch if a bump was lost; false while it cannot.
    async fn settle_epoch(&self) -> bool {
        if !self.epoch_stale.load(Ordering::Acquire) {
            return true;
        }
        let mut connection = self.connection.clone();
        let key = self.key("epoch");
        let moved: redis::RedisResult<u64> = with_timeout(async {
            redis::cmd("INCR")
                .arg(&key)
                .query_async(&mut connection)
                .await
        })
        .await;
        match moved {
            Ok(_) => {
                self.epoch_stale.store(false, Ordering::Release);
                tracing::info!("cache epoch moved after a lost invalidation");
                true
            }
            Err(error) => {
                self.failed(&error);
                false
            }
        }
    }
}

/// Reads epoch, generation and value in one round trip.
const GET_SCRIPT: &str = r"
local epoch = redis.call('GET', KEYS[1]) or '0'
local generation = redis.call('GET', KEYS[2]) or '0'
local key = ARGV[1] .. ':' .. epoch .. ':' .. generation
return {key, redis.call('GET', key)}
";

impl Cache {
    /// An in-process cache bounded to `capacity` values.
    pub fn local(capacity: u64) -> Cache {
        Cache {
            store: Store::Local(Arc::new(LocalStore {
                values: moka::future::Cache::builder()
                    .max_capacity(capacity)
                    .time_to_live(ENTRY_TTL)
                    .build(),
                generations: Mutex::new(HashMap::new()),
            })),
        }
    }

    pub fn redis(connection: ConnectionManager, prefix: &str) -> Cache {
        Cache {
            store: Store::Redis(Arc::new(RedisStore {
                connection,
                prefix: prefix.to_owned(),
                paused_until: AtomicU64::new(0),
                epoch_stale: AtomicBool::new(false),
            })),
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
        let (key, cached) = match self.lookup(kind, id).await {
            Some(found) => found,
            None => {
                record_result(kind, "bypass");
                return load().await;
            }
        };
        if let Some(value) = cached.and_then(|text| serde_json::from_str(&text).ok()) {
            record_result(kind, "hit");
            return Ok(Some(value));
        }
        record_result(kind, "miss");
        let loaded = load().await?;
        if let Some(value) = &loaded
            && let Ok(text) = serde_json::to_string(value)
        {
            self.store_value(key, text).await;
        }
        Ok(loaded)
    }

    /// The key to use for `(kind, id)` and the value stored there; `None`
    /// when the cache must be bypassed.
    async fn lookup(&self, kind: CacheKind, id: Uuid) -> Option<(String, Option<String>)> {
        let base = format!("{}:{id}", kind.as_str());
        match &self.store {
            Store::Local(local) => {
                let generation = local.generation(&base);
                let key = format!("{base}:0:{generation}");
                let value = local.values.get(&key).await;
                Some((key, value))
            }
            Store::Redis(redis) => {
                if !redis.available() || !redis.settle_epoch().await {
                    return None;
                }
                let mut connection = redis.connection.clone();
                let script = redis::Script::new(GET_SCRIPT);
                let mut invocation = script.prepare_invoke();
                invocation
                    .key(redis.key("epoch"))
                    .key(redis.key(&format!("gen:{base}")))
                    .arg(redis.key(&format!("value:{base}")));
                let found: redis::RedisResult<(String, Option<String>)> =
                    with_timeout(async { invocation.invoke_async(&mut connection).await }).await;
                match found {
                    Ok(found) => Some(found),
                    Err(error) => {
                        redis.failed(&error);
                        None
                    }
                }
            }
        }
    }

    async fn store_value(&self, key: String, value: String) {
        match &self.store {
            Store::Local(local) => local.values.insert(key, value).await,
            Store::Redis(redis) => {
                let mut connection = redis.connection.clone();
                let stored: redis::RedisResult<()> = with_timeout(async {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(value)
                        .arg("EX")
                        .arg(ENTRY_TTL.as_secs())
                        .query_async(&mut connection)
                        .await
                })
                .await;
                if let Err(error) = stored {
                    redis.failed(&error);
                }
            }
        }
    }

    /// Makes every cached value of `(kind, id)` unreachable. Call after the
    /// transaction that changed it has committed.
    pub async fn invalidate(&self, kind: CacheKind, id: Uuid) {
        let base = format!("{}:{id}", kind.as_str());
        match &self.store {
            Store::Local(local) => local.bump(base),
            Store::Redis(redis) => {
                let key = redis.key(&format!("gen:{base}"));
                let bumped: redis::RedisResult<()> = if redis.available() {
                    let mut connection = redis.connection.clone();
                    with_timeout(async {
                        redis::pipe()
                            .atomic()
                            .incr(&key, 1)
                            .ignore()
                            .expire(&key, GENERATION_TTL.as_secs() as i64)
                            .ignore()
                            .query_async(&mut connection)
                            .await
                    })
                    .await
                } else {
                    Err(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "redis paused",
                    )))
                };
                if let Err(error) = bumped {
                    // Until the epoch moves, no instance may trust entries
                    // written before this write: this one bypasses the
                    // cache, and moves the epoch as soon as Redis answers.
                    redis.failed(&error);
                    metrics::counter!("cache_errors_total", "operation" => "invalidate")
                        .increment(1);
                    if !redis.epoch_stale.swap(true, Ordering::AcqRel) {
                        let redis = Arc::clone(redis);
                        tokio::spawn(async move {
                            while !redis.settle_epoch().await {
                                tokio::time::sleep(EPOCH_RETRY).await;
                            }
                        });
                    }
                }
            }
        }
    }
}

fn record_result(kind: CacheKind, result: &'static str) {
    metrics::counter!("cache_requests_total", "cache" => kind.as_str(), "result" => result)
        .increment(1);
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
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
