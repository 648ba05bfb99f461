//! Cache-aside for hot reads (the user behind a token, loan details).
//!
//! Two levels. The near level is process memory holding decoded values:
//! a hit costs no network round trip and no parsing, which is what lets a
//! cached read run at close to the speed of the bare HTTP stack. The
//! shared level is Redis, when `REDIS_URL` is set, holding encoded values
//! every instance can fill and read.
//!
//! Shared entries are invalidated by generation rather than by delete:
//! every entry is stored under `value:{kind}:{id}:{epoch}:{generation}`,
//! and a write bumps the generation of what it changed after its
//! transaction commits. A reader that raced with the write and loaded the
//! old row stores it under the old generation, which nobody reads again.
//!
//! Near entries are invalidated by message. A write publishes what it
//! changed on an invalidation channel and waits until every other
//! subscribed instance has acknowledged dropping it — so once a write has returned, no
//! instance serves what it replaced. An instance trusts its near level only
//! while its subscription is live (checked by a heartbeat); when the
//! subscription drops it reads the shared level, and when it comes back it
//! starts with an empty near level, since it may have missed messages.
//!
//! If a bump fails (Redis away at that moment), this instance stops using
//! the cache and, as soon as Redis answers again, moves the shared epoch
//! and broadcasts a flush, which makes everything cached before unreachable
//! on every instance; only then does it use the cache again.
//!
//! Redis failing is never an error for the client: the cache is bypassed
//! (the database answers), the failure is counted, and after a short pause
//! Redis is tried again.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use uuid::Uuid;

use crate::clock::SharedClock;
use crate::redis::with_timeout;

/// How long a cached value lives.
pub const ENTRY_TTL: Duration = Duration::from_secs(60);
/// Generations outlive every entry they name.
const GENERATION_TTL: Duration = Duration::from_secs(24 * 3600);
/// After a failure, Redis is left alone this long.
const REDIS_PAUSE: Duration = Duration::from_secs(2);
/// How often a lost invalidation retries moving the epoch.
const EPOCH_RETRY: Duration = Duration::from_millis(250);
/// How often the invalidation subscription proves it is alive.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Pause before subscribing again after the subscription failed.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(500);
/// Longest a write waits for other instances to drop what it changed.
const ACK_TIMEOUT: Duration = Duration::from_millis(500);
/// Near-level invalidation counters; a key maps to one by hash.
const STRIPES: usize = 64;

/// What a cached value is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

    /// Marks the shape of a kind's stored text in its key, so that
    /// instances of two versions (during a rolling upgrade) never read
    /// each other's entries: a loan entry carries its day since the
    /// servicing ledger (v2), and its days past due since delinquency (v3).
    fn value_format(self) -> &'static str {
        match self {
            CacheKind::User => "",
            CacheKind::Loan => "v3:",
        }
    }

    fn parse(text: &str) -> Option<CacheKind> {
        match text {
            "user" => Some(CacheKind::User),
            "loan" => Some(CacheKind::Loan),
            _ => None,
        }
    }
}

/// A value the cache can hold: kept decoded in process memory, and as
/// text in Redis.
pub trait Cacheable: Sized + Send + Sync + 'static {
    fn encode(&self) -> String;
    fn decode(text: &str) -> Option<Self>;
}

/// Cheap to clone: every clone is the same cache.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<CacheInner>,
}

struct CacheInner {
    near: NearCache,
    shared: Option<Arc<SharedCache>>,
}

/// Decoded values in process memory. Every invalidation of a key bumps
/// its stripe's counter before dropping the entry; a reader notes the
/// counter before loading and keeps what it stored only if the counter has
/// not moved since — so a value loaded before a write can never stay
/// behind after the write's invalidation.
struct NearCache {
    values: moka::sync::Cache<(CacheKind, Uuid), Arc<dyn Any + Send + Sync>>,
    stripes: [AtomicU64; STRIPES],
    hasher: std::collections::hash_map::RandomState,
}

impl NearCache {
    fn new(capacity: u64) -> NearCache {
        NearCache {
            values: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ENTRY_TTL)
                .build(),
            stripes: std::array::from_fn(|_| AtomicU64::new(0)),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn stripe(&self, key: &(CacheKind, Uuid)) -> &AtomicU64 {
        &self.stripes[(self.hasher.hash_one(key) as usize) % STRIPES]
    }

    fn stamp(&self, key: &(CacheKind, Uuid)) -> u64 {
        self.stripe(key).load(Ordering::SeqCst)
    }

    fn get<T: Cacheable>(&self, key: &(CacheKind, Uuid)) -> Option<Arc<T>> {
        self.values.get(key)?.downcast::<T>().ok()
    }

    fn insert_unless_invalidated<T: Cacheable>(
        &self,
        key: (CacheKind, Uuid),
        stamp: u64,
        value: Arc<T>,
    ) {
        self.values.insert(key, value);
        // Checked after inserting: an invalidation that bumped the stripe
        // before this check is caught here; one after it drops the entry.
        if self.stamp(&key) != stamp {
            self.values.invalidate(&key);
        }
    }

    fn invalidate(&self, key: (CacheKind, Uuid)) {
        self.stripe(&key).fetch_add(1, Ordering::SeqCst);
        self.values.invalidate(&key);
    }

    fn clear(&self) {
        for stripe in &self.stripes {
            stripe.fetch_add(1, Ordering::SeqCst);
        }
        self.values.invalidate_all();
    }
}

/// The Redis level and the invalidation channel.
struct SharedCache {
    connection: ConnectionManager,
    client: redis::Client,
    prefix: String,
    /// Names this instance on the invalidation channel.
    instance: String,
    /// Unix millis before which Redis is not tried again.
    paused_until: AtomicU64,
    /// Where the pause after a failure is measured.
    clock: SharedClock,
    /// A bump failed: the epoch must move before the cache is used again.
    epoch_stale: AtomicBool,
    /// The invalidation subscription is live, so near entries are current.
    in_sync: AtomicBool,
    next_sequence: AtomicU64,
    /// Acknowledgements counted so far, per invalidation this instance sent.
    acks: Mutex<HashMap<u64, tokio::sync::watch::Sender<i64>>>,
}

impl SharedCache {
    fn available(&self) -> bool {
        self.unix_millis() >= self.paused_until.load(Ordering::Relaxed)
    }

    fn failed(&self, error: &redis::RedisError) {
        let until = self.unix_millis() + REDIS_PAUSE.as_millis() as u64;
        self.paused_until.store(until, Ordering::Relaxed);
        tracing::warn!(error = %error, "redis unavailable; pausing its use");
    }

    fn key(&self, part: &str) -> String {
        format!("{}:cache:{part}", self.prefix)
    }

    fn unix_millis(&self) -> u64 {
        u64::try_from(self.clock.now().timestamp_millis()).unwrap_or(0)
    }

    fn events_channel(&self) -> String {
        self.key("events")
    }

    fn ack_channel(&self, instance: &str) -> String {
        self.key(&format!("acks:{instance}"))
    }

    /// Moves the shared epoch and tells every instance to empty its near
    /// level, if a bump was lost; false while it cannot.
    async fn settle_epoch(&self) -> bool {
        if !self.epoch_stale.load(Ordering::Acquire) {
            return true;
        }
        let mut connection = self.connection.clone();
        let moved: redis::RedisResult<()> = with_timeout(async {
            redis::pipe()
                .atomic()
                .incr(self.key("epoch"), 1)
                .ignore()
                .publish(self.events_channel(), "flush")
                .ignore()
                .query_async(&mut connection)
                .await
        })
        .await;
        match moved {
            Ok(()) => {
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

    /// The key to use for `(kind, id)` and the text stored there; `None`
    /// when Redis must be bypassed.
    async fn lookup(&self, kind: CacheKind, id: Uuid) -> Option<(String, Option<String>)> {
        if !self.available() || !self.settle_epoch().await {
            return None;
        }
        let base = format!("{}:{id}", kind.as_str());
        let mut connection = self.connection.clone();
        let script = redis::Script::new(GET_SCRIPT);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.key("epoch"))
            .key(self.key(&format!("gen:{base}")))
            .arg(self.key(&format!("value:{}{base}", kind.value_format())));
        let found: redis::RedisResult<(String, Option<String>)> =
            with_timeout(async { invocation.invoke_async(&mut connection).await }).await;
        match found {
            Ok(found) => Some(found),
            Err(error) => {
                self.failed(&error);
                None
            }
        }
    }

    async fn store(&self, key: String, value: String) {
        let mut connection = self.connection.clone();
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
            self.failed(&error);
        }
    }

    /// Bumps the generations of `ids`, broadcasts their invalidation and
    /// waits for every subscribed instance to acknowledge it.
    async fn invalidate(self: &Arc<Self>, kind: CacheKind, ids: &[Uuid]) {
        let sequence = self.next_sequence.fetch_add(1, Ordering::Relaxed);
        let (acknowledged, mut acks) = tokio::sync::watch::channel(0_i64);
        self.acks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(sequence, acknowledged);
        let outcome = self.broadcast(kind, ids, sequence).await;
        let outcome = match outcome {
            Ok(receivers) => {
                // This instance dropped the entries itself before
                // broadcasting, so it does not acknowledge its own message;
                // it counts among the receivers while it is subscribed.
                let subscribed_here = i64::from(self.in_sync.load(Ordering::Acquire));
                let expected = receivers - subscribed_here;
                let all_acknowledged =
                    tokio::time::timeout(ACK_TIMEOUT, acks.wait_for(|count| *count >= expected))
                        .await
                        .is_ok_and(|waited| waited.is_ok());
                if !all_acknowledged {
                    tracing::warn!(
                        receivers,
                        acknowledged = *acks.borrow(),
                        "not every instance acknowledged a cache invalidation in time"
                    );
                    metrics::counter!("cache_errors_total", "operation" => "acknowledge")
                        .increment(1);
                }
                Ok(())
            }
            Err(error) => Err(error),
        };
        self.acks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&sequence);
        if let Err(error) = outcome {
            // Until the epoch moves, no instance may trust entries written
            // before this write: this one bypasses the cache, and moves the
            // epoch as soon as Redis answers.
            self.failed(&error);
            metrics::counter!("cache_errors_total", "operation" => "invalidate").increment(1);
            if !self.epoch_stale.swap(true, Ordering::AcqRel) {
                let shared = Arc::clone(self);
                tokio::spawn(async move {
                    while !shared.settle_epoch().await {
                        tokio::time::sleep(EPOCH_RETRY).await;
                    }
                });
            }
        }
    }

    /// One transaction: the generation bumps, then the message; answers
    /// how many instances received the message.
    async fn broadcast(
        &self,
        kind: CacheKind,
        ids: &[Uuid],
        sequence: u64,
    ) -> redis::RedisResult<i64> {
        if !self.available() {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "redis paused",
            )));
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for id in ids {
            let key = self.key(&format!("gen:{}:{id}", kind.as_str()));
            pipe.incr(&key, 1)
                .ignore()
                .expire(&key, GENERATION_TTL.as_secs() as i64)
                .ignore();
        }
        let listed: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        let message = format!(
            "inv {} {sequence} {} {}",
            self.instance,
            kind.as_str(),
            listed.join(",")
        );
        pipe.publish(self.events_channel(), message);
        let mut connection = self.connection.clone();
        let (receivers,): (i64,) = with_timeout(pipe.query_async(&mut connection)).await?;
        Ok(receivers)
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
    /// An in-process cache bounded to `capacity` values, for a single
    /// instance.
    pub fn local(capacity: u64) -> Cache {
        Cache {
            inner: Arc::new(CacheInner {
                near: NearCache::new(capacity),
                shared: None,
            }),
        }
    }

    /// The two-level cache over Redis at `url`. Starts following the
    /// invalidation channel on the current runtime.
    pub fn redis(
        connection: ConnectionManager,
        url: &str,
        prefix: &str,
        near_capacity: u64,
        clock: SharedClock,
    ) -> redis::RedisResult<Cache> {
        let cache = Cache {
            inner: Arc::new(CacheInner {
                near: NearCache::new(near_capacity),
                shared: Some(Arc::new(SharedCache {
                    connection,
                    client: redis::Client::open(url)?,
                    prefix: prefix.to_owned(),
                    instance: Uuid::new_v4().simple().to_string(),
                    paused_until: AtomicU64::new(0),
                    clock,
                    epoch_stale: AtomicBool::new(false),
                    in_sync: AtomicBool::new(false),
                    next_sequence: AtomicU64::new(0),
                    acks: Mutex::new(HashMap::new()),
                })),
            }),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(follow_invalidations(Arc::downgrade(&cache.inner)));
        }
        Ok(cache)
    }

    /// Whether near entries may be served: always on a single instance;
    /// with Redis, only while the invalidation subscription is live.
    fn near_is_current(&self) -> bool {
        self.inner
            .shared
            .as_ref()
            .is_none_or(|shared| shared.in_sync.load(Ordering::Acquire))
    }

    /// The cached value of `(kind, id)`, or what `load` returns (stored for
    /// next time). `load` returning `None` (nothing there) is not cached.
    pub async fn get_or_load<T, E, F, Fut>(
        &self,
        kind: CacheKind,
        id: Uuid,
        load: F,
    ) -> Result<Option<Arc<T>>, E>
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        self.get_fresh_or_load(kind, id, |_| true, load).await
    }

    /// [`Cache::get_or_load`] for values that age: a cached value `fresh`
    /// refuses is loaded again (and replaces it), as on a miss.
    pub async fn get_fresh_or_load<T, E, F, Fut>(
        &self,
        kind: CacheKind,
        id: Uuid,
        fresh: impl Fn(&T) -> bool,
        load: F,
    ) -> Result<Option<Arc<T>>, E>
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let key = (kind, id);
        let near = &self.inner.near;
        let near_current = self.near_is_current();
        if near_current
            && let Some(value) = near.get::<T>(&key)
            && fresh(&value)
        {
            record_result(kind, "hit");
            return Ok(Some(value));
        }
        let stamp = near.stamp(&key);
        let found = match &self.inner.shared {
            None => {
                record_result(kind, "miss");
                load().await?.map(Arc::new)
            }
            Some(shared) => match shared.lookup(kind, id).await {
                None => {
                    record_result(kind, "bypass");
                    return Ok(load().await?.map(Arc::new));
                }
                Some((_, Some(text)))
                    if let Some(value) = T::decode(&text)
                        && fresh(&value) =>
                {
                    record_result(kind, "hit");
                    Some(Arc::new(value))
                }
                Some((shared_key, _)) => {
                    record_result(kind, "miss");
                    let loaded = load().await?;
                    if let Some(value) = &loaded {
                        shared.store(shared_key, value.encode()).await;
                    }
                    loaded.map(Arc::new)
                }
            },
        };
        if near_current && let Some(value) = &found {
            near.insert_unless_invalidated(key, stamp, Arc::clone(value));
        }
        Ok(found)
    }

    /// Makes every cached value of `(kind, id)` unreachable on every
    /// instance. Call after the transaction that changed it has committed.
    pub async fn invalidate(&self, kind: CacheKind, id: Uuid) {
        self.invalidate_all_of(kind, &[id]).await;
    }

    /// [`Cache::invalidate`] for many ids at once: one broadcast, one wait.
    /// Drops every cached value, here and (by moving the shared epoch) on
    /// every instance: for when changes may have been missed.
    pub async fn forget_everything(&self) {
        self.inner.near.values.invalidate_all();
        if let Some(shared) = &self.inner.shared {
            shared.epoch_stale.store(true, Ordering::Release);
            // If Redis is away, lookups bypass it and keep trying to move
            // the epoch before they trust it again.
            shared.settle_epoch().await;
        }
    }

    pub async fn invalidate_all_of(&self, kind: CacheKind, ids: &[Uuid]) {
        if ids.is_empty() {
            return;
        }
        for id in ids {
            self.inner.near.invalidate((kind, *id));
        }
        if let Some(shared) = &self.inner.shared {
            shared.invalidate(kind, ids).await;
        }
    }
}

/// Follows the invalidation channel for as long as the cache exists:
/// drops what other instances changed, acknowledges it, and keeps
/// `in_sync` true only while the subscription is provably live.
async fn follow_invalidations(cache: Weak<CacheInner>) {
    loop {
        let subscription = {
            let Some(inner) = cache.upgrade() else { return };
            let Some(shared) = inner.shared.as_ref() else {
                return;
            };
            subscribe(shared).await
        };
        match subscription {
            Ok((sink, stream)) => {
                {
                    let Some(inner) = cache.upgrade() else { return };
                    // Messages may have been missed while unsubscribed.
                    inner.near.clear();
                    if let Some(shared) = &inner.shared {
                        shared.in_sync.store(true, Ordering::Release);
                    }
                }
                let ended = follow(&cache, sink, stream).await;
                let Some(inner) = cache.upgrade() else { return };
                if let Some(shared) = &inner.shared {
                    shared.in_sync.store(false, Ordering::Release);
                }
                if let Err(reason) = ended {
                    tracing::warn!(%reason, "cache invalidation channel lost; resubscribing");
                }
            }
            Err(error) => {
                tracing::debug!(%error, "cannot subscribe to cache invalidations yet");
            }
        }
        tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
    }
}

async fn subscribe(
    shared: &SharedCache,
) -> redis::RedisResult<(redis::aio::PubSubSink, redis::aio::PubSubStream)> {
    with_timeout(async {
        let (mut sink, stream) = shared.client.get_async_pubsub().await?.split();
        sink.subscribe(&[
            shared.events_channel(),
            shared.ack_channel(&shared.instance),
        ])
        .await?;
        Ok((sink, stream))
    })
    .await
}

/// Handles messages until the subscription fails (or the cache is gone,
/// which is `Ok`).
async fn follow(
    cache: &Weak<CacheInner>,
    mut sink: redis::aio::PubSubSink,
    mut stream: redis::aio::PubSubStream,
) -> Result<(), String> {
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else {
                    return Err("the subscription connection closed".to_owned());
                };
                let Some(inner) = cache.upgrade() else { return Ok(()) };
                handle_message(&inner, &message);
            }
            _ = heartbeat.tick() => {
                if cache.strong_count() == 0 {
                    return Ok(());
                }
                let pong: redis::RedisResult<redis::Value> = with_timeout(sink.ping()).await;
                if let Err(error) = pong {
                    return Err(format!("heartbeat failed: {error}"));
                }
            }
        }
    }
}

fn handle_message(inner: &CacheInner, message: &redis::Msg) {
    let Some(shared) = inner.shared.as_ref() else {
        return;
    };
    let Ok(payload) = message.get_payload::<String>() else {
        return;
    };
    if message.get_channel_name() != shared.events_channel() {
        // An acknowledgement of one of this instance's invalidations.
        if let Ok(sequence) = payload.parse::<u64>()
            && let Some(acknowledged) = shared
                .acks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&sequence)
        {
            acknowledged.send_modify(|count| *count += 1);
        }
        return;
    }
    let mut words = payload.split(' ');
    match words.next() {
        Some("flush") => inner.near.clear(),
        Some("inv") => {
            let (Some(sender), Some(sequence), Some(kind), Some(ids)) =
                (words.next(), words.next(), words.next(), words.next())
            else {
                return;
            };
            let Some(kind) = CacheKind::parse(kind) else {
                return;
            };
            for id in ids.split(',').filter_map(|id| id.parse::<Uuid>().ok()) {
                inner.near.invalidate((kind, id));
            }
            if sender == shared.instance {
                // Our own write, which does not wait for itself.
                return;
            }
            let channel = shared.ack_channel(sender);
            let sequence = sequence.to_owned();
            let mut connection = shared.connection.clone();
            tokio::spawn(async move {
                let sent: redis::RedisResult<()> = with_timeout(async {
                    redis::cmd("PUBLISH")
                        .arg(channel)
                        .arg(sequence)
                        .query_async(&mut connection)
                        .await
                })
                .await;
                if let Err(error) = sent {
                    tracing::warn!(%error, "cannot acknowledge a cache invalidation");
                }
            });
        }
        _ => {}
    }
}

fn record_result(kind: CacheKind, result: &'static str) {
    crate::metrics::record_cache_result(kind.as_str(), result);
}
