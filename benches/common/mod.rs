//! What the benchmarks share: a scratch PostgreSQL database and the
//! service state on it.

use std::collections::HashMap;
use std::sync::Arc;

use loan_tracker::app::AppState;
use loan_tracker::config::Config;
use sea_orm::ConnectionTrait;

/// Creates `lt_bench_<random>` on `BENCH_DATABASE_URL` (default: the local
/// server), runs `work` against the service built on it with `extra`
/// configuration, and drops the database afterwards unless `BENCH_KEEP`
/// is set.
pub async fn with_scratch_state<F, Fut>(extra: &[(&str, &str)], work: F) -> anyhow::Result<()>
where
    F: FnOnce(AppState) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let server_url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("lt_bench_{}", uuid::Uuid::new_v4().simple());
    let server = sea_orm::Database::connect(&server_url).await?;
    server
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    let result = async {
        let url = match server_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => anyhow::bail!("BENCH_DATABASE_URL needs a database path"),
        };
        let mut vars: HashMap<String, String> = [
            ("DATABASE_URL", url.as_str()),
            ("JWT_SECRET", "bench-secret-0123456789abcdef0123456789"),
            ("LOG_FORMAT", "json"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        vars.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let config = Config::from_map(&vars)?;
        let state =
            loan_tracker::startup::build_state(config, Arc::new(loan_tracker::clock::SystemClock))
                .await?;
        work(state).await
    }
    .await;
    if std::env::var("BENCH_KEEP").is_err() {
        server
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await?;
    }
    result
}

/// Runs each statement in order.
pub async fn execute_all(state: &AppState, statements: &[String]) -> anyhow::Result<()> {
    for statement in statements {
        state.db.write.execute_unprepared(statement).await?;
    }
    Ok(())
}

/// Reads one row of named `BIGINT` counts.
pub async fn counts(state: &AppState, sql: &str, names: &[&str]) -> anyhow::Result<Vec<i64>> {
    let db = &state.db.write;
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql.to_owned(),
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row"))?;
    names
        .iter()
        .map(|name| Ok(row.try_get::<i64>("", name)?))
        .collect()
}

/// 10 000 users `user1` … `user10000`, for bulk-loaded loans.
pub const BULK_USERS: &str = "INSERT INTO users (id, email, username, username_key, password_hash, role) \
     SELECT gen_random_uuid(), 'user' || g || '@bench.example', 'user' || g, 'user' || g, 'x', 'USER' \
     FROM generate_series(1, 10000) g";

/// The process's peak resident set size (VmHWM) in MB, from /proc.
#[allow(
    dead_code,
    reason = "shared by the bench binaries, and not every one calls it (so an expect would fail in those that do)"
)]
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
