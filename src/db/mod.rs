//! Database connections and migrations.
//!
//! The backend is picked from the URL scheme. On SQLite (the embedded
//! default) every write goes through a pool of exactly one connection and
//! write transactions start with `BEGIN IMMEDIATE`, so writers queue up in
//! the process instead of failing with `SQLITE_BUSY`; reads use a separate
//! pool and, thanks to WAL, never wait for the writer. On PostgreSQL writes
//! and reads share one pool unless a read replica is configured.

use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction,
    DbErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

use crate::config::{Config, DatabaseKind, DatabaseUrl};

pub mod batch;
pub mod entities;
pub mod migrations;

/// Handles to the database: `write` for transactions and anything that
/// must see the latest committed state, `read` for plain lookups and lists.
#[derive(Clone, Debug)]
pub struct Db {
    pub write: DatabaseConnection,
    pub read: DatabaseConnection,
}

/// The most values one statement may bind: PostgreSQL's wire protocol
/// counts them in 16 bits; SQLite's bundled build allows 32 766.
pub fn max_bind_parameters(backend: DatabaseBackend) -> usize {
    match backend {
        DatabaseBackend::Postgres => 65_535,
        _ => 32_766,
    }
}

/// How many rows of `parameters_per_row` bound values fit in one
/// statement on `backend` (leaving room for a few more).
pub fn rows_per_statement(backend: DatabaseBackend, parameters_per_row: usize) -> usize {
    ((max_bind_parameters(backend) - 64) / parameters_per_row.max(1)).max(1)
}

/// How long a request waits for a pooled connection before giving up.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long SQLite waits on a lock held by another process.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const SQLITE_READ_CONNECTIONS: u32 = 4;

impl Db {
    pub async fn connect(config: &Config) -> Result<Db, DbErr> {
        match config.database_url.kind() {
            DatabaseKind::Sqlite => {
                let write = connect_sqlite(&config.database_url, 1).await?;
                let read = connect_sqlite(&config.database_url, SQLITE_READ_CONNECTIONS).await?;
                Ok(Db { write, read })
            }
            DatabaseKind::Postgres => {
                let max = config.database_max_connections;
                let write = connect_postgres(&config.database_url, max).await?;
                let read = match &config.database_read_url {
                    Some(url) => connect_postgres(url, max).await?,
                    None => write.clone(),
                };
                Ok(Db { write, read })
            }
        }
    }

    /// Where to read what must be current (a client reading its own
    /// write, a cache being filled): the primary on PostgreSQL, whatever a
    /// replica says; on SQLite the read pool, which WAL keeps current and
    /// which never waits behind the single writer.
    pub fn fresh(&self) -> &DatabaseConnection {
        if self.is_postgres() {
            &self.write
        } else {
            &self.read
        }
    }

    pub fn backend(&self) -> DatabaseBackend {
        self.write.get_database_backend()
    }

    pub fn is_postgres(&self) -> bool {
        self.backend() == DatabaseBackend::Postgres
    }

    /// Starts a transaction that will write. On SQLite it takes the write
    /// lock up front (`BEGIN IMMEDIATE`), so a transaction that first reads
    /// and then writes cannot fail half-way on a lock upgrade.
    pub async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr> {
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        self.write.begin_with_options(options).await
    }

    /// Applies pending migrations. On PostgreSQL an advisory lock makes
    /// instances that start together take turns; the later ones find
    /// nothing left to do.
    /// `timezone` is the service's: the upgrade that gave payments a value
    /// date values each existing one on the day it was recorded there.
    pub async fn migrate(&self, timezone: chrono_tz::Tz) -> Result<(), DbErr> {
        if self.is_postgres() {
            let transaction = self.write.begin().await?;
            transaction
                .execute_unprepared(&format!(
                    "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
                ))
                .await?;
            migrations::Migrator::up(&transaction, None).await?;
            fill_in_value_dates(&transaction, timezone).await?;
            transaction.commit().await
        } else {
            migrations::Migrator::up(&self.write, None).await?;
            let transaction = self.begin_write().await?;
            fill_in_value_dates(&transaction, timezone).await?;
            transaction.commit().await
        }
    }

    /// Whether the database answers, for the readiness probe.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.write.ping().await?;
        self.read.ping().await
    }
}

/// A pooled PostgreSQL connection idle this long is checked before use.
const IDLE_BEFORE_CHECK: Duration = Duration::from_millis(250);

/// An arbitrary constant identifying our migration lock among advisory locks.
const MIGRATION_LOCK_KEY: i64 = 7_310_455_001;

async fn connect_sqlite(
    url: &DatabaseUrl,
    max_connections: u32,
) -> Result<DatabaseConnection, DbErr> {
    if let Some(parent) =
        sqlite_file_path(url.expose()).and_then(|path| path.parent().map(ToOwned::to_owned))
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(&parent).map_err(|error| {
            DbErr::Custom(format!("cannot create {}: {error}", parent.display()))
        })?;
    }
    let mut options = ConnectOptions::new(url.expose().to_owned());
    options
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|opts| {
            opts.create_if_missing(true)
                .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
        });
    sea_orm::Database::connect(options).await
}

async fn connect_postgres(
    url: &DatabaseUrl,
    max_connections: u32,
) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.expose().to_owned());
    options
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        // Reconnect transparently after the server restarts: a pooled
        // connection that sat idle is checked before it is handed out. Not
        // one that was busy a moment ago — sqlx already checks every
        // connection when it is released, and a second round trip on each
        // acquire was two thirds of the round trips of a list request. A
        // restart takes longer than this, so every connection released
        // before it has sat idle long enough to be checked after it.
        .test_before_acquire_if_idle_for(IDLE_BEFORE_CHECK)
        .sqlx_logging(false);
    sea_orm::Database::connect(options).await
}

/// The file behind `sqlite://path?query`, if it names one.
/// The file an SQLite URL names (`None` for an in-memory database).
pub fn sqlite_file_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// Whether an error is a unique-constraint violation, on either backend.
pub fn is_unique_violation(error: &DbErr) -> bool {
    matches!(
        error.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// The value date the servicing-ledger migration gives payments recorded
/// before it; no payment can really have it (value dates lie within a
/// loan's life).
pub const UNSET_VALUE_DATE: &str = "1970-01-01";

/// Values every payment still marked [`UNSET_VALUE_DATE`] on the day it was
/// recorded in `timezone`. Does nothing once done, so a start interrupted
/// half-way finishes it next time.
async fn fill_in_value_dates(
    transaction: &DatabaseTransaction,
    timezone: chrono_tz::Tz,
) -> Result<(), DbErr> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect, Statement};
    if transaction.get_database_backend() == DatabaseBackend::Postgres {
        transaction
            .execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "UPDATE payments SET value_date = (paid_at AT TIME ZONE $1)::date \
                 WHERE value_date = $2::date",
                [timezone.name().into(), UNSET_VALUE_DATE.into()],
            ))
            .await?;
        return Ok(());
    }
    // SQLite has no time zones: the days are worked out here.
    let unset = chrono::NaiveDate::parse_from_str(UNSET_VALUE_DATE, "%Y-%m-%d")
        .map_err(|error| DbErr::Custom(error.to_string()))?;
    loop {
        let batch: Vec<(uuid::Uuid, chrono::DateTime<chrono::Utc>)> =
            entities::payment::Entity::find()
                .select_only()
                .column(entities::payment::Column::Id)
                .column(entities::payment::Column::PaidAt)
                .filter(entities::payment::Column::ValueDate.eq(unset))
                .limit(500)
                .into_tuple()
                .all(transaction)
                .await?;
        if batch.is_empty() {
            return Ok(());
        }
        for (id, paid_at) in batch {
            entities::payment::Entity::update_many()
                .col_expr(
                    entities::payment::Column::ValueDate,
                    sea_orm::sea_query::Expr::value(crate::clock::local_date(paid_at, timezone)),
                )
                .filter(entities::payment::Column::Id.eq(id))
                .exec(transaction)
                .await?;
        }
    }
}
