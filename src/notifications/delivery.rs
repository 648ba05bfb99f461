//! Email delivery through a durable queue (apalis).
//!
//! Requests never send email. They write a notification row in their own
//! transaction; that row is the outbox. The relay, running in worker
//! processes, claims notifications not yet enqueued and pushes one
//! `EmailJob` per notification onto the queue — stored in the SQL database
//! by default, in Redis when `REDIS_URL` is set. The email worker takes
//! jobs off the queue, sends (or logs) the email, and records `emailed_at`,
//! so a job that runs twice does not send twice. A failing send is retried
//! with exponential backoff; after `EMAIL_MAX_ATTEMPTS` the job is dead:
//! marked killed in the queue, logged as an error, and counted.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::layers::retry::HasherRng;
use apalis::layers::retry::backoff::{ExponentialBackoffMaker, MakeBackoff};
use apalis::prelude::*;
use apalis_codec::json::JsonCodec;
use apalis_core::backend::persistence::TaskPersistLayer;
use apalis_core::backend::{BackendConfig, WireFormatBackend, finalize::Durable};
use apalis_postgres::PostgresStorage;
use apalis_redis::RedisStorage;
use apalis_sqlite::SqliteStorage;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tower::{Layer, Service};
use uuid::Uuid;

use super::email::{Mailer, compose};
use crate::app::AppState;
use crate::config::{Config, DatabaseKind};
use crate::db::entities::{notification, user};

/// One email to send: the notification it announces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailJob {
    pub notification_id: Uuid,
}

/// The queue of email jobs, on whichever storage the configuration names.
#[derive(Clone)]
pub enum EmailQueue {
    Sqlite(SqliteStorage<EmailJob>),
    Postgres(PostgresStorage<EmailJob>),
    Redis(RedisStorage<EmailJob>),
}

/// How often a worker looks for new jobs and the relay for new
/// notifications.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
const RELAY_BATCH: u64 = 100;

/// The queue's name in Redis: `EMAIL_QUEUE` under `REDIS_KEY_PREFIX`.
/// (apalis also lists every queue's workers in one registry key of its
/// own, `core:apalis:queues:list`, whose members are these names.)
pub fn redis_queue_name(config: &Config) -> String {
    format!("{}:{}", config.redis_key_prefix, config.email_queue)
}

impl EmailQueue {
    /// Connects to the queue storage and creates its tables if needed.
    pub async fn connect(config: &Config) -> anyhow::Result<EmailQueue> {
        let queue_name = config.email_queue.clone();
        if let Some(redis_url) = &config.redis_url {
            // Connected lazily: the worker starts (and keeps retrying) even
            // while Redis is away.
            let client = redis::Client::open(redis_url.expose())?;
            let settings = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(Duration::from_secs(10)))
                .set_max_delay(Duration::from_secs(5));
            let connection = redis::aio::ConnectionManager::new_lazy_with_config(client, settings)?;
            // Under the deployment's key prefix like every other key, so
            // deployments sharing one Redis never take each other's jobs.
            let storage = RedisStorage::new(connection)
                .with_config(apalis_redis::Config::default().queue(redis_queue_name(config)));
            return Ok(EmailQueue::Redis(storage));
        }
        match config.database_url.kind() {
            DatabaseKind::Sqlite => {
                // Its own small pool: the queue must never hold the
                // service's single writer connection.
                let options =
                    sqlx::sqlite::SqliteConnectOptions::from_str(config.database_url.expose())?
                        .create_if_missing(true)
                        .busy_timeout(Duration::from_secs(10));
                let pool = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(2)
                    .connect_with(options)
                    .await?;
                SqliteStorage::setup(&pool).await?;
                let storage = SqliteStorage::new(&pool)
                    .with_config(apalis_sqlite::Config::default().queue(&queue_name));
                Ok(EmailQueue::Sqlite(storage))
            }
            DatabaseKind::Postgres => {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(4)
                    .connect(config.database_url.expose())
                    .await?;
                PostgresStorage::setup(&pool).await?;
                let storage = PostgresStorage::new(&pool)
                    .with_config(apalis_postgres::Config::default().queue(&queue_name));
                Ok(EmailQueue::Postgres(storage))
            }
        }
    }

    /// Puts one job on the queue.
    pub async fn push(&self, job: EmailJob, max_attempts: usize) -> anyhow::Result<()> {
        let task = TaskBuilder::new(job).max_attempts(max_attempts).build();
        match self {
            EmailQueue::Sqlite(storage) => storage.clone().push_task(task).await?,
            EmailQueue::Postgres(storage) => storage.clone().push_task(task).await?,
            EmailQueue::Redis(storage) => storage.clone().push_task(task).await?,
        }
        Ok(())
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            EmailQueue::Sqlite(_) => "sqlite",
            EmailQueue::Postgres(_) => "postgres",
            EmailQueue::Redis(_) => "redis",
        }
    }

    /// Consumes jobs until `stop` turns true, finishing the job in hand.
    pub async fn run_worker(
        &self,
        context: Arc<DeliveryContext>,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let name = format!(
            "email-{}-{}",
            crate::app::instance_name(),
            Uuid::now_v7().simple()
        );
        match self {
            EmailQueue::Sqlite(storage) => {
                run_email_worker(
                    name,
                    storage.clone().poll_with_interval(POLL_INTERVAL),
                    context,
                    stop,
                )
                .await
            }
            EmailQueue::Postgres(storage) => {
                run_email_worker(
                    name,
                    storage.clone().poll_with_interval(POLL_INTERVAL),
                    context,
                    stop,
                )
                .await
            }
            EmailQueue::Redis(storage) => {
                run_email_worker(
                    name,
                    storage.clone().poll_with_interval(POLL_INTERVAL),
                    context,
                    stop,
                )
                .await
            }
        }
    }
}

/// What the email worker needs, shared by every job it runs.
pub struct DeliveryContext {
    pub state: AppState,
    pub mailer: Mailer,
    pub max_attempts: usize,
    pub retry_backoff: Duration,
    pub delivered: AtomicU64,
    /// Attempts that failed (each retry counts).
    pub failed_attempts: AtomicU64,
    pub dead: AtomicU64,
}

impl DeliveryContext {
    pub fn new(state: AppState) -> anyhow::Result<DeliveryContext> {
        let mailer = Mailer::from_config(&state.config)?;
        Ok(DeliveryContext {
            max_attempts: state.config.email_max_attempts,
            retry_backoff: state.config.email_retry_backoff,
            state,
            mailer,
            delivered: AtomicU64::new(0),
            failed_attempts: AtomicU64::new(0),
            dead: AtomicU64::new(0),
        })
    }
}

type PersistLayer = TaskPersistLayer<JsonCodec<serde_json::Value>, serde_json::Value>;

async fn run_email_worker<B>(
    name: String,
    backend: B,
    context: Arc<DeliveryContext>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()>
where
    B: Backend<Task = Task<Vec<u8>>>
        + BackendConfig<Args = EmailJob, Kind = Durable, Layer = PersistLayer>
        + WireFormatBackend<Codec = JsonCodec<Vec<u8>>, Compact = Vec<u8>>
        + Send
        + Unpin
        + 'static,
{
    // Attempts after the first are in-process retries with backoff; a task
    // whose worker dies is picked up again from storage up to the same cap.
    let backoff = ExponentialBackoffMaker::new(
        context.retry_backoff,
        context.retry_backoff.saturating_mul(64),
        0.5,
        HasherRng::default(),
    )
    .map_err(|error| anyhow::anyhow!("invalid backoff: {error}"))?
    .make_backoff();
    let retries = context.max_attempts.saturating_sub(1);
    WorkerBuilder::new(name)
        .backend(backend)
        .on_event(|_context, event| {
            if let Event::Error(error) = event
                && error.downcast_ref::<AbortError>().is_none()
            {
                tracing::warn!(error = %error, "email job failed");
            }
        })
        .layer(DeadLetterLayer {
            context: Arc::clone(&context),
        })
        .retry(RetryPolicy::retries(retries).with_backoff(backoff))
        .data(Arc::clone(&context))
        .build(deliver)
        .run_until(async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
            Ok::<(), std::io::Error>(())
        })
        .await
        .map_err(|error| anyhow::anyhow!("email worker stopped: {error}"))
}

async fn deliver(job: EmailJob, context: Data<Arc<DeliveryContext>>) -> Result<(), BoxDynError> {
    match deliver_notification(&context, job.notification_id).await {
        Ok(outcome) => {
            tracing::debug!(notification_id = %job.notification_id, ?outcome, "email job done");
            Ok(())
        }
        Err(error) => {
            context.failed_attempts.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("email_deliveries_total", "result" => "failed").increment(1);
            tracing::warn!(notification_id = %job.notification_id, error = format!("{error:#}"), "email attempt failed");
            Err(error.into())
        }
    }
}

/// What a delivery attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    AlreadySent,
    /// The recipient's account no longer exists: nobody to write to.
    RecipientGone,
}

/// Sends the email of one notification unless it was sent before.
pub async fn deliver_notification(
    context: &DeliveryContext,
    notification_id: Uuid,
) -> anyhow::Result<Delivery> {
    let db = &context.state.db.write;
    // Notifications are never deleted: a job naming none is not ours (a
    // misconfigured queue shared with another deployment) or corrupt. That
    // is a failure to see, not a delivery to count as done.
    let Some(row) = notification::Entity::find_by_id(notification_id)
        .one(db)
        .await?
    else {
        metrics::counter!("email_deliveries_total", "result" => "unknown_notification")
            .increment(1);
        anyhow::bail!("no notification {notification_id} in this database");
    };
    if row.emailed_at.is_some() {
        return Ok(Delivery::AlreadySent);
    }
    let Some(recipient) = user::Entity::find_by_id(row.user_id).one(db).await? else {
        return Ok(Delivery::RecipientGone);
    };
    let email = compose(&row, &recipient.email, &recipient.username);
    context.mailer.send(&email).await?;
    notification::Entity::update_many()
        .col_expr(
            notification::Column::EmailedAt,
            Expr::value(context.state.now()),
        )
        .filter(notification::Column::Id.eq(notification_id))
        .filter(notification::Column::EmailedAt.is_null())
        .exec(db)
        .await?;
    context.delivered.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("email_deliveries_total", "result" => "sent").increment(1);
    tracing::info!(%notification_id, kind = ?row.kind, "email sent");
    Ok(Delivery::Sent)
}

/// Moves notifications from the outbox onto the queue; returns how many.
/// Each row is claimed (its `email_enqueued_at` set) before its job is
/// pushed, so two relays never enqueue the same notification; a failed push
/// releases the claim for the next round.
pub async fn relay_outbox(
    state: &AppState,
    queue: &EmailQueue,
    max_attempts: usize,
) -> anyhow::Result<usize> {
    let db = &state.db.write;
    let pending = notification::Entity::find()
        .filter(Expr::cust("email_enqueued_at IS NULL"))
        .order_by_asc(notification::Column::CreatedAt)
        .limit(RELAY_BATCH)
        .all(db)
        .await?;
    let mut enqueued = 0;
    for row in pending {
        let claimed = notification::Entity::update_many()
            .col_expr(
                notification::Column::EmailEnqueuedAt,
                Expr::value(state.now()),
            )
            .filter(notification::Column::Id.eq(row.id))
            .filter(notification::Column::EmailEnqueuedAt.is_null())
            .exec(db)
            .await?;
        if claimed.rows_affected == 0 {
            continue;
        }
        let job = EmailJob {
            notification_id: row.id,
        };
        if let Err(error) = queue.push(job, max_attempts).await {
            notification::Entity::update_many()
                .col_expr(
                    notification::Column::EmailEnqueuedAt,
                    Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
                )
                .filter(notification::Column::Id.eq(row.id))
                .exec(db)
                .await?;
            return Err(error.context("cannot enqueue an email job"));
        }
        enqueued += 1;
    }
    Ok(enqueued)
}

/// Notifications queued this long ago and still not emailed (their job
/// died, or the process died between claiming and queueing them) go back
/// to the outbox — for a day; after that they stay dead.
const REDRIVE_AFTER: chrono::Duration = chrono::Duration::minutes(15);
const REDRIVE_FOR: chrono::Duration = chrono::Duration::hours(24);
/// Relay rounds between two sweeps for stuck emails (about a minute).
const SWEEP_EVERY: u32 = 120;

/// Returns stuck notifications to the outbox; returns how many.
pub async fn redrive_stuck(state: &AppState) -> anyhow::Result<u64> {
    let now = state.now();
    let released = notification::Entity::update_many()
        .col_expr(
            notification::Column::EmailEnqueuedAt,
            Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
        )
        .filter(Expr::cust("emailed_at IS NULL"))
        .filter(notification::Column::EmailEnqueuedAt.lt(now - REDRIVE_AFTER))
        .filter(notification::Column::CreatedAt.gt(now - REDRIVE_FOR))
        .exec(&state.db.write)
        .await?;
    if released.rows_affected > 0 {
        tracing::warn!(
            count = released.rows_affected,
            "emails not sent in time returned to the outbox"
        );
        metrics::counter!("email_redriven_total").increment(released.rows_affected);
    }
    Ok(released.rows_affected)
}

/// Runs the relay every poll interval until `stop` turns true.
pub async fn run_relay(
    state: AppState,
    queue: EmailQueue,
    max_attempts: usize,
    mut stop: watch::Receiver<bool>,
) {
    let mut round: u32 = 0;
    loop {
        if round.is_multiple_of(SWEEP_EVERY)
            && let Err(error) = redrive_stuck(&state).await
        {
            tracing::warn!(
                error = format!("{error:#}"),
                "email redrive failed; retrying"
            );
        }
        round = round.wrapping_add(1);
        match relay_outbox(&state, &queue, max_attempts).await {
            Ok(count) if count > 0 => tracing::debug!(count, "email jobs enqueued"),
            Ok(_) => {}
            Err(error) => tracing::warn!(
                error = format!("{error:#}"),
                "email relay round failed; retrying"
            ),
        }
        tokio::select! {
            () = tokio::time::sleep(POLL_INTERVAL) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// Wraps the retrying handler: when the last attempt fails, the job is
/// dead. It is marked killed in the queue (so it is not picked up again),
/// logged as an error, and counted.
#[derive(Clone)]
struct DeadLetterLayer {
    context: Arc<DeliveryContext>,
}

#[derive(Clone)]
struct DeadLetter<S> {
    inner: S,
    context: Arc<DeliveryContext>,
}

impl<S> Layer<S> for DeadLetterLayer {
    type Service = DeadLetter<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DeadLetter {
            inner,
            context: Arc::clone(&self.context),
        }
    }
}

impl<S, Args> Service<Task<Args>> for DeadLetter<S>
where
    S: Service<Task<Args>>,
    S::Error: Into<BoxDynError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxDynError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Args>) -> Self::Future {
        let execution = task.ctx().clone();
        let context = Arc::clone(&self.context);
        let attempt = self.inner.call(task);
        Box::pin(async move {
            match attempt.await {
                Ok(response) => Ok(response),
                Err(error) => {
                    let error: BoxDynError = error.into();
                    let max_attempts = execution.max_attempts().unwrap_or(context.max_attempts);
                    if execution.attempt() >= max_attempts {
                        execution.raw_status().store(Status::Killed);
                        context.dead.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("email_deliveries_total", "result" => "dead")
                            .increment(1);
                        tracing::error!(
                            task_id = ?execution.task_id().map(|id| id.to_string()),
                            attempts = execution.attempt(),
                            error = %error,
                            "email job is dead after its last attempt"
                        );
                        Err(Box::new(AbortError::new(error)) as BoxDynError)
                    } else {
                        Err(error)
                    }
                }
            }
        })
    }
}
