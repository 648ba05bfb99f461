//! Backing up and restoring the embedded SQLite database.
//!
//! `loan-tracker backup PATH` takes a consistent copy while the service
//! runs: SQLite's `VACUUM INTO` reads one snapshot of the database (every
//! transaction committed before it started, none half-applied) and writes
//! it as a fresh, compact file. Payments keep being recorded meanwhile.
//!
//! `loan-tracker restore PATH` puts such a copy in place of the database,
//! with the service stopped: it checks the copy (`PRAGMA integrity_check`,
//! and that it holds no migration this binary does not know), moves the
//! current database files aside with a `.before-restore-<time>` suffix,
//! and copies the backup in. The next start applies any newer migrations.
//!
//! Every process serving the database holds a shared lock on
//! `<database>.lock`; restore takes it exclusively, so it refuses to run
//! under a live service.
//!
//! PostgreSQL has its own, better tools; both commands say so and fail.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::Utc;
use sea_orm::{ConnectionTrait, Database, DatabaseBackend, Statement};

use crate::config::{Config, DatabaseKind};

/// What to tell someone asking to back up or restore PostgreSQL.
pub const POSTGRES_ADVICE: &str = "this service keeps its books in PostgreSQL, whose own tools do this better: \
back up with `pg_dump --format=custom` (a consistent snapshot while the service runs) or with base backups and \
WAL archiving (`pg_basebackup`, `archive_command`) for point-in-time recovery; restore with `pg_restore` into an \
empty database, or by recovering the base backup. See docs/operations.md, \"Backups\".";

/// The SQLite file a configuration names, or why there is none.
fn database_file(config: &Config) -> anyhow::Result<PathBuf> {
    if config.database_url.kind() != DatabaseKind::Sqlite {
        bail!("{POSTGRES_ADVICE}");
    }
    crate::db::sqlite_file_path(config.database_url.expose())
        .context("the configured SQLite database is not a file")
}

fn lock_file(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Held by every process that serves the embedded database.
#[derive(Debug)]
pub struct ServiceLock(#[expect(dead_code, reason = "held for its lock, released on drop")] File);

/// Takes the shared service lock on the embedded database; `None` on
/// PostgreSQL. Fails while a restore holds the database.
pub fn hold_service_lock(config: &Config) -> anyhow::Result<Option<ServiceLock>> {
    if config.database_url.kind() != DatabaseKind::Sqlite {
        return Ok(None);
    }
    // An in-memory database has no file to restore over, nor to lock.
    let Some(database) = crate::db::sqlite_file_path(config.database_url.expose()) else {
        return Ok(None);
    };
    if let Some(parent) = database.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let path = lock_file(&database);
    let file = File::create(&path).with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock_shared() {
        Ok(()) => Ok(Some(ServiceLock(file))),
        Err(TryLockError::WouldBlock) => {
            bail!("the database is being restored; start the service when that is done")
        }
        Err(TryLockError::Error(error)) => {
            Err(error).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// What a backup wrote.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub destination: PathBuf,
    pub bytes: u64,
}

/// Writes a consistent copy of the embedded database to `destination`,
/// which must not exist yet.
pub async fn backup(config: &Config, destination: &Path) -> anyhow::Result<BackupReport> {
    let database = database_file(config)?;
    if destination.exists() {
        bail!(
            "{} already exists; choose a new file for the backup",
            destination.display()
        );
    }
    let target = destination
        .to_str()
        .context("the backup path is not valid UTF-8")?;
    let connection = Database::connect(config.database_url.expose())
        .await
        .with_context(|| format!("cannot open {}", database.display()))?;
    connection
        .execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Sqlite,
            "VACUUM INTO ?",
            [target.into()],
        ))
        .await
        .with_context(|| format!("cannot write the backup to {}", destination.display()))?;
    connection.close().await?;
    let bytes = std::fs::metadata(destination)?.len();
    Ok(BackupReport {
        destination: destination.to_owned(),
        bytes,
    })
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    pub database: PathBuf,
    /// Where the replaced database files went.
    pub kept_aside: Vec<PathBuf>,
    /// The last migration the restored copy has.
    pub migration: Option<String>,
}

/// Replaces the embedded database with the backup at `source` (the
/// service must be stopped).
pub async fn restore(config: &Config, source: &Path) -> anyhow::Result<RestoreReport> {
    let database = database_file(config)?;
    if !source.is_file() {
        bail!("{} is not a file", source.display());
    }
    let migration = check_backup(source).await?;

    let lock_path = lock_file(&database);
    let lock =
        File::create(&lock_path).with_context(|| format!("cannot open {}", lock_path.display()))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            bail!("the service is running on this database; stop it before restoring")
        }
        Err(TryLockError::Error(error)) => {
            return Err(error).with_context(|| format!("cannot lock {}", lock_path.display()));
        }
    }

    // The database with its write-ahead log and shared-memory index: a
    // set that only means something together.
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ");
    let mut kept_aside = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut current = database.as_os_str().to_owned();
        current.push(suffix);
        let current = PathBuf::from(current);
        if current.exists() {
            let mut aside = current.as_os_str().to_owned();
            aside.push(format!(".before-restore-{stamp}"));
            let aside = PathBuf::from(aside);
            std::fs::rename(&current, &aside)
                .with_context(|| format!("cannot move {} aside", current.display()))?;
            kept_aside.push(aside);
        }
    }
    if let Some(parent) = database.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(source, &database)
        .with_context(|| format!("cannot copy {} to {}", source.display(), database.display()))?;
    drop(lock);
    Ok(RestoreReport {
        database,
        kept_aside,
        migration,
    })
}

/// Checks that `source` is a sound SQLite database of this service that
/// this binary can run; returns its last migration.
async fn check_backup(source: &Path) -> anyhow::Result<Option<String>> {
    let url = format!("sqlite://{}?mode=ro", source.display());
    let connection = Database::connect(&url).await.with_context(|| {
        format!(
            "{} is not a database this service can open",
            source.display()
        )
    })?;
    let integrity = connection
        .query_one_raw(Statement::from_string(
            DatabaseBackend::Sqlite,
            "PRAGMA integrity_check",
        ))
        .await
        .with_context(|| format!("{} is not an SQLite database", source.display()))?
        .and_then(|row| row.try_get_by_index::<String>(0).ok());
    if integrity.as_deref() != Some("ok") {
        bail!(
            "{} fails SQLite's integrity check: {}",
            source.display(),
            integrity.unwrap_or_else(|| "no answer".to_owned())
        );
    }
    let applied = connection
        .query_all_raw(Statement::from_string(
            DatabaseBackend::Sqlite,
            "SELECT version FROM seaql_migrations ORDER BY version",
        ))
        .await
        .with_context(|| format!("{} is not a Loan Tracker database", source.display()))?;
    connection.close().await?;
    let known: Vec<String> = crate::db::migrations::names();
    let mut last = None;
    for row in applied {
        let version: String = row.try_get_by_index(0)?;
        if !known.contains(&version) {
            bail!(
                "{} has migration {version}, which this binary does not know: restore it with the release that wrote it",
                source.display()
            );
        }
        last = Some(version);
    }
    if last.is_none() {
        bail!("{} holds no Loan Tracker schema", source.display());
    }
    Ok(last)
}
