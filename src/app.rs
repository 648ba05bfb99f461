//! The shared state every handler receives.

use std::sync::Arc;

use redis::aio::ConnectionManager;
use secrecy::SecretString;

use crate::auth::password::Passwords;
use crate::auth::tokens::TokenKeys;
use crate::cache::Cache;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::db::Db;
use crate::http::rate_limit::Limiter;
use crate::payments::queue::PaymentQueue;
use crate::read_routing::RecentWriters;

/// Cache entries kept at most in process memory.
const NEAR_CACHE_CAPACITY: u64 = 50_000;
/// How ordinary payments are combined (`payments::combining`), as
/// (transactions open at once, payments per transaction). On PostgreSQL a
/// few transactions, so that one batch is read and worked out while
/// another waits for its commit, of up to 4 payments each: measured as
/// fast as 8, 16 or 32 on spread and hot loans, with a lower p99 and a
/// smaller resident set (every batch of a new shape is a statement each
/// pooled connection prepares and keeps; BENCHMARKS.md). SQLite has one
/// writer whatever the service does, so one transaction of up to 16.
const PAYMENT_COMBINING_ON_POSTGRES: (usize, usize) = (4, 4);
const PAYMENT_COMBINING_ON_SQLITE: (usize, usize) = (1, 16);

/// Cloned into every request (by each middleware and extractor), so it is
/// one reference-counted pointer.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

pub struct Services {
    pub config: Arc<Config>,
    pub db: Db,
    pub clock: SharedClock,
    pub tokens: Arc<TokenKeys>,
    pub passwords: Arc<Passwords>,
    /// Redis, when `REDIS_URL` is set (connected lazily, reconnecting).
    pub redis: Option<ConnectionManager>,
    pub cache: Cache,
    /// Login and registration attempts per client IP.
    pub auth_limiter: Arc<Limiter>,
    /// All requests per client (user, else IP).
    pub rate_limiter: Arc<Limiter>,
    /// When each user last wrote, for routing their reads.
    pub recent_writers: Arc<RecentWriters>,
    /// Ordinary payments waiting to be written together.
    pub payment_queue: PaymentQueue,
    /// Whether this instance hears every change to a user row now (see
    /// `auth::user_changes`): only then may the user behind a token be
    /// served from the cache.
    pub user_changes_heard: std::sync::atomic::AtomicBool,
}

impl AppState {
    pub fn new(
        config: Config,
        db: Db,
        clock: SharedClock,
        jwt_secret: &SecretString,
    ) -> anyhow::Result<AppState> {
        let tokens = TokenKeys::new(
            jwt_secret,
            config.access_token_ttl,
            config.refresh_token_ttl,
        );
        let redis = match &config.redis_url {
            Some(url) => Some(crate::redis::connect(url.expose())?),
            None => None,
        };
        let cache = match (&redis, &config.redis_url) {
            (Some(connection), Some(url)) => Cache::redis(
                connection.clone(),
                url.expose(),
                &config.redis_key_prefix,
                NEAR_CACHE_CAPACITY,
                clock.clone(),
            )?,
            _ => Cache::local(NEAR_CACHE_CAPACITY),
        };
        let prefix = &config.redis_key_prefix;
        let auth_limiter = Limiter::new(
            "auth",
            config.auth_rate_limit_per_minute,
            redis.clone(),
            prefix,
            clock.clone(),
        );
        let rate_limiter = Limiter::new(
            "api",
            config.rate_limit_per_minute,
            redis.clone(),
            prefix,
            clock.clone(),
        );
        let recent_writers = RecentWriters::new(
            config.read_your_writes,
            redis.clone(),
            &config.redis_key_prefix,
        );
        crate::metrics::install();
        let (writers, most_per_transaction) = if db.is_postgres() {
            PAYMENT_COMBINING_ON_POSTGRES
        } else {
            PAYMENT_COMBINING_ON_SQLITE
        };
        let payment_queue = PaymentQueue::new(writers, most_per_transaction);
        Ok(AppState(Arc::new(Services {
            config: Arc::new(config),
            db,
            clock,
            tokens: Arc::new(tokens),
            passwords: Arc::new(Passwords::new()?),
            redis,
            cache,
            auth_limiter: Arc::new(auth_limiter),
            rate_limiter: Arc::new(rate_limiter),
            recent_writers: Arc::new(recent_writers),
            payment_queue,
            user_changes_heard: std::sync::atomic::AtomicBool::new(false),
        })))
    }

    /// A handle that does not keep the services alive: background tasks
    /// hold it and stop when it no longer upgrades.
    pub fn downgrade(&self) -> std::sync::Weak<Services> {
        Arc::downgrade(&self.0)
    }

    /// What the servicing pipeline needs of the service: the clock, the
    /// calendar and the late-fee rule.
    pub fn servicing(&self) -> crate::servicing::ServicingContext {
        crate::servicing::ServicingContext {
            clock: self.clock.clone(),
            timezone: self.config.timezone,
            late_fee: self.config.late_fee_rule(),
        }
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Today's date in the service time zone.
    pub fn today(&self) -> chrono::NaiveDate {
        crate::clock::local_date(self.now(), self.config.timezone)
    }

    /// The database a list requested by `user` reads from: the replica,
    /// unless `user` wrote recently (then the primary, so they read their
    /// own writes), or the only database there is.
    pub async fn list_reader(&self, user: uuid::Uuid) -> &sea_orm::DatabaseConnection {
        if self.config.database_read_url.is_none() {
            return &self.db.read;
        }
        if self.recent_writers.wrote_recently(user, self.now()).await {
            &self.db.write
        } else {
            &self.db.read
        }
    }
}

/// Identifies this process, in `job_runs` and email delivery claims.
pub fn instance_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_owned());
    format!("{host}:{}", std::process::id())
}
