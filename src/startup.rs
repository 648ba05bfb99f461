//! Bringing the service up: logging, secrets, database, admin bootstrap,
//! and serving until a shutdown signal.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::SecretString;
use tokio::net::TcpListener;

use crate::app::AppState;
use crate::auth::service::ensure_admin;
use crate::clock::SharedClock;
use crate::config::{Config, LogFormat};
use crate::db::Db;
use crate::log_sink::{LogGuard, LogSink};
use crate::users::domain::{Email, NewPassword, Username};

/// Installs the global `tracing` subscriber: JSON lines unless asked for
/// pretty output; `RUST_LOG` filters (default `info`). Long-running
/// commands log to stdout; one-shot commands to stderr, keeping stdout for
/// their output. Lines are written by a background thread (see
/// [`crate::log_sink`]); hold the guard until exit so none are lost.
pub fn init_tracing(format: LogFormat, to_stderr: bool) -> Option<LogGuard> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (sink, guard) = match LogSink::start(to_stderr) {
        Ok(started) => started,
        Err(error) => {
            eprintln!("cannot start the log writer: {error}");
            return None;
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sink);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    if let Err(error) = result {
        eprintln!("logging was already initialised: {error}");
    }
    Some(guard)
}

const JWT_SECRET_FILE: &str = "jwt-secret";

/// The configured JWT secret, or in embedded mode the one kept in the data
/// directory (generated on first start, readable only by its owner).
pub fn resolve_jwt_secret(config: &Config) -> anyhow::Result<SecretString> {
    if let Some(secret) = &config.jwt_secret {
        return Ok(secret.clone());
    }
    load_or_create_secret(&config.data_dir.join(JWT_SECRET_FILE))
}

fn load_or_create_secret(path: &Path) -> anyhow::Result<SecretString> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim().to_owned();
        anyhow::ensure!(
            existing.len() >= 32,
            "{} holds a secret shorter than 32 bytes",
            path.display()
        );
        return Ok(SecretString::from(existing));
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    let secret = hex::encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(secret.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a JWT secret for embedded mode");
            Ok(SecretString::from(secret))
        }
        // Another process created it first: use theirs.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            load_or_create_secret(path)
        }
        Err(error) => Err(error).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// Applies pending migrations, then starts the journal of a database
/// that had loans before it had one (once; see `journal::backfill`).
pub async fn migrate(
    db: &Db,
    config: &Config,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    db.migrate(config.timezone)
        .await
        .context("cannot apply migrations")?;
    crate::journal::backfill::start_journal(&db.write, config.timezone, now)
        .await
        .context("cannot start the journal")
}

/// Connects, migrates, and builds the shared state.
pub async fn build_state(config: Config, clock: SharedClock) -> anyhow::Result<AppState> {
    let secret = resolve_jwt_secret(&config)?;
    let db = Db::connect(&config)
        .await
        .with_context(|| format!("cannot connect to {:?}", config.database_url))?;
    migrate(&db, &config, clock.now()).await?;
    let state = AppState::new(config, db, clock, &secret)?;
    follow_user_changes(&state);
    bootstrap_admin(&state).await?;
    Ok(state)
}

/// On PostgreSQL, drops a cached user the moment their row changes (see
/// `auth::user_changes`), for as long as the state lives.
fn follow_user_changes(state: &AppState) {
    if state.config.database_url.kind() != crate::config::DatabaseKind::Postgres {
        return;
    }
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(crate::auth::user_changes::follow(
            state.config.database_url.expose().to_owned(),
            state.downgrade(),
        ));
    }
}

/// Creates the `ADMIN_*` administrator if configured and not yet there.
async fn bootstrap_admin(state: &AppState) -> anyhow::Result<()> {
    let Some(admin) = state.config.admin_bootstrap.clone() else {
        return Ok(());
    };
    let email = Email::parse(admin.email).map_err(|e| anyhow::anyhow!("ADMIN_EMAIL {e}"))?;
    let username =
        Username::parse(admin.username).map_err(|e| anyhow::anyhow!("ADMIN_USERNAME {e}"))?;
    let password =
        NewPassword::parse(secrecy::ExposeSecret::expose_secret(&admin.password).to_owned())
            .map_err(|e| anyhow::anyhow!("ADMIN_PASSWORD {e}"))?;
    let created = ensure_admin(state, email.clone(), username, password)
        .await
        .map_err(|error| anyhow::anyhow!("cannot create the bootstrap admin: {error}"))?;
    if created {
        tracing::info!(
            email = email.as_str(),
            "created the bootstrap administrator"
        );
    }
    Ok(())
}

/// How long in-flight background work may take to finish at shutdown.
const BACKGROUND_GRACE: Duration = Duration::from_secs(20);
/// How long in-flight requests may take to finish at shutdown (a little
/// more than the request timeout).
const DRAIN_GRACE: Duration = Duration::from_secs(35);

/// Serves `state` on `listener` until SIGINT or SIGTERM, then lets
/// in-flight requests finish. With `background`, the email worker, relay
/// and scheduler run in the same process and are stopped after the API.
pub async fn serve(state: AppState, listener: TcpListener, background: bool) -> anyhow::Result<()> {
    let address = listener.local_addr()?;
    let workers = if background {
        Some(crate::worker::Background::start(state.clone()).await?)
    } else {
        None
    };
    let limits = crate::server::ConnectionLimits::from_config(&state.config);
    let app = crate::router::router(state);
    tracing::info!(%address, background, "listening");
    // After the signal, in-flight requests get DRAIN_GRACE to finish.
    crate::server::serve(listener, app, limits, shutdown_signal(), DRAIN_GRACE).await;
    if let Some(workers) = workers {
        workers.stop(BACKGROUND_GRACE).await;
    }
    tracing::info!("shut down");
    Ok(())
}

/// Runs only the background work until SIGINT or SIGTERM. The only HTTP
/// it serves, on `listener`, is `/health/*` and `/metrics`.
pub async fn run_worker(state: AppState, listener: TcpListener) -> anyhow::Result<()> {
    let address = listener.local_addr()?;
    let workers = crate::worker::Background::start(state.clone()).await?;
    let limits = crate::server::ConnectionLimits::from_config(&state.config);
    let operations = crate::router::operations_router(state);
    tracing::info!(%address, "worker running; serving health and metrics only");
    crate::server::serve(listener, operations, limits, shutdown_signal(), DRAIN_GRACE).await;
    workers.stop(BACKGROUND_GRACE).await;
    tracing::info!("worker shut down");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}

/// A shared system clock.
pub fn system_clock() -> SharedClock {
    Arc::new(crate::clock::SystemClock)
}
