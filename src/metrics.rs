//! Prometheus metrics, served at `GET /metrics`.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `http_requests_total` | method, route, status | requests answered |
//! | `http_request_duration_seconds` | method, route, status | latency histogram |
//! | `db_pool_connections` | pool (write, read), state (in_use, idle) | pool usage, sampled at scrape |
//! | `cache_requests_total` | cache (user, loan), result (hit, miss, bypass) | cache-aside lookups (bypass: Redis unavailable) |
//! | `cache_errors_total` | operation | failed invalidations |
//! | `rate_limited_requests_total` | scope (api, auth) | requests answered 429 |
//! | `rate_limit_fallbacks_total` | scope | checks counted locally because Redis failed |
//! | `job_runs_total` | job, status | job runs (SUCCEEDED, FAILED) |
//! | `job_run_duration_seconds` | job | how long runs took |
//! | `job_rows_failed_total` | job | rows left for the next run |
//! | `email_deliveries_total` | result (sent, failed, dead) | email attempts |
//! | `email_redriven_total` | — | stuck emails returned to the outbox |
//! | `email_outbox_pending` | — | notifications not yet on the queue, sampled |
//! | `email_queue_depth` | — | queued emails not yet sent, sampled |
//! | `loans_applied_total`, `loans_approved_total` | — | business events |
//! | `payments_total`, `payments_amount_minor_total` | currency | payments and their sum in minor units |
//! | `payment_transactions_total` | — | transactions that wrote ordinary payments (several are combined into one under load) |
//! | `loans_by_bucket` | bucket (CURRENT, 1-30, 31-60, 61-90, 91+) | APPROVED/OVERDUE loans per delinquency bucket, refreshed by `overdue-check` and sampled at scrape |
//! | `principal_outstanding_minor` | bucket | their principal not yet repaid, in minor units, likewise |
//! | `loans_written_off` | — | WRITTEN_OFF loans (in no bucket), likewise |
//! | `principal_written_off_minor` | — | the principal they wrote off, in minor units, likewise |

use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};

use axum::http::Method;
use metrics::{Counter, Histogram};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::db::Db;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Installs the process-wide recorder once; later calls reuse it.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".to_owned()),
                    &LATENCY_BUCKETS,
                )
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => {
                    start_upkeep(handle.clone());
                    Some(handle)
                }
                Err(error) => {
                    tracing::warn!(%error, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// How often histogram observations are folded into their buckets.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The recorder keeps every histogram observation until it is folded into
/// buckets, which otherwise happens only when `/metrics` is scraped: with
/// nobody scraping, memory grew by about 20 bytes per request (measured
/// under load). A thread of its own folds them every few seconds, whatever
/// runtime is or is not running.
fn start_upkeep(handle: PrometheusHandle) {
    let started = std::thread::Builder::new()
        .name("metrics-upkeep".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(error) = started {
        tracing::warn!(%error, "metrics upkeep not started; histograms are folded only when scraped");
    }
}

/// Handles by label values: a hot path looks its series up in a small map
/// instead of building a key and searching the recorder's registry (which
/// measured at several per cent of a cached read). Handles are bound to
/// the recorder that exists when they are made, so they are made on first
/// use, after [`install`].
struct Series<K, V> {
    handles: OnceLock<RwLock<HashMap<K, V>>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> Series<K, V> {
    const fn new() -> Series<K, V> {
        Series {
            handles: OnceLock::new(),
        }
    }

    fn get(&self, key: K, make: impl FnOnce(&K) -> V) -> V {
        let handles = self.handles.get_or_init(|| RwLock::new(HashMap::new()));
        if let Some(value) = handles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return value.clone();
        }
        let value = make(&key);
        handles
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_insert(value)
            .clone()
    }
}

static HTTP_SERIES: Series<(Method, String, u16), (Counter, Histogram)> = Series::new();
static CACHE_SERIES: Series<(&'static str, &'static str), Counter> = Series::new();

/// Counts an answered request and its latency. Methods outside the
/// standard set are labelled `OTHER`, so clients cannot mint new series.
pub fn record_request(method: &Method, route: &str, status: u16, seconds: f64) {
    let method = match *method {
        Method::GET
        | Method::HEAD
        | Method::POST
        | Method::PUT
        | Method::PATCH
        | Method::DELETE
        | Method::OPTIONS => method.clone(),
        _ => Method::from_bytes(b"OTHER").unwrap_or(Method::GET),
    };
    let (requests, latency) = HTTP_SERIES.get((method, route.to_owned(), status), |key| {
        let labels = [
            ("method", key.0.as_str().to_owned()),
            ("route", key.1.clone()),
            ("status", key.2.to_string()),
        ];
        (
            metrics::counter!("http_requests_total", &labels),
            metrics::histogram!("http_request_duration_seconds", &labels),
        )
    });
    requests.increment(1);
    latency.record(seconds);
}

/// Counts a cache lookup by cache and result.
pub fn record_cache_result(cache: &'static str, result: &'static str) {
    CACHE_SERIES
        .get(
            (cache, result),
            |_| metrics::counter!("cache_requests_total", "cache" => cache, "result" => result),
        )
        .increment(1);
}

/// The Prometheus text for a scrape, after sampling the gauges of `db`
/// (its read pool too when it has one of its own: a replica, or SQLite's
/// separate reader pool), and the delinquency gauges as of `today`: every
/// instance reports the book as it is, not as it was when this one last
/// ran `overdue-check` (which refreshes them too).
pub async fn render(db: &Db, has_read_replica: bool, today: chrono::NaiveDate) -> String {
    sample_pool(&db.write, "write");
    if has_read_replica || !db.is_postgres() {
        sample_pool(&db.read, "read");
    }
    sample_queue(&db.read).await;
    if let Ok(delinquency) = crate::reports::delinquency(&db.read, today).await {
        crate::reports::publish(&delinquency);
    }
    install().map(PrometheusHandle::render).unwrap_or_default()
}

fn sample_pool(connection: &DatabaseConnection, pool: &'static str) {
    let (size, idle) = match connection.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => {
            let pool = connection.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => {
            let pool = connection.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
    };
    let idle = u32::try_from(idle).unwrap_or(u32::MAX);
    metrics::gauge!("db_pool_connections", "pool" => pool, "state" => "in_use")
        .set(f64::from(size.saturating_sub(idle)));
    metrics::gauge!("db_pool_connections", "pool" => pool, "state" => "idle").set(f64::from(idle));
}

async fn sample_queue(reader: &DatabaseConnection) {
    let backend = reader.get_database_backend();
    // Both counts use the notifications' partial indexes.
    let sql = "SELECT \
        (SELECT COUNT(*) FROM notifications WHERE email_enqueued_at IS NULL) AS outbox, \
        (SELECT COUNT(*) FROM notifications WHERE email_enqueued_at IS NOT NULL AND emailed_at IS NULL) AS queued";
    let row = reader
        .query_one_raw(sea_orm::Statement::from_string(backend, sql.to_owned()))
        .await;
    if let Ok(Some(row)) = row {
        let outbox: i64 = row.try_get("", "outbox").unwrap_or(0);
        let queued: i64 = row.try_get("", "queued").unwrap_or(0);
        metrics::gauge!("email_outbox_pending").set(outbox as f64);
        metrics::gauge!("email_queue_depth").set(queued as f64);
    }
}
