//! Scheduled jobs. Each is a plain async function of an explicit `as_of`
//! date, so the scheduler, the CLI (`loan-tracker jobs run`) and the admin
//! endpoint all run exactly the same code, and tests move time by passing
//! another date. Every job is idempotent: running it twice for one day
//! changes nothing the second time. They work in bounded batches, so memory
//! stays flat however many rows there are, and a row that fails is logged,
//! left as it was, and picked up again by the next run.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use std::sync::Arc;

use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::db::entities::job_run;

pub mod archive;
pub mod handlers;
pub mod overdue;
pub mod reminders;
pub mod replay;
pub mod scheduler;

/// Rows handled per batch (and per transaction).
pub const BATCH_SIZE: u64 = 500;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobName {
    PaymentReminders,
    OverdueCheck,
    AuditArchive,
}

impl JobName {
    pub const ALL: [JobName; 3] = [
        JobName::PaymentReminders,
        JobName::OverdueCheck,
        JobName::AuditArchive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobName::PaymentReminders => "payment-reminders",
            JobName::OverdueCheck => "overdue-check",
            JobName::AuditArchive => "audit-archive",
        }
    }

    pub fn parse(text: &str) -> Option<JobName> {
        Self::ALL.into_iter().find(|job| job.as_str() == text)
    }
}

/// Who started a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    Api,
    Cli,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "SCHEDULE",
            Trigger::Api => "API",
            Trigger::Cli => "CLI",
        }
    }
}

/// What a run did: `{job, asOf, processed, ...counts}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobReport {
    #[schema(example = "overdue-check")]
    pub job: String,
    pub as_of: NaiveDate,
    /// Rows examined.
    pub processed: u64,
    /// Job-specific counts, e.g. `penaltiesApplied`, `failed`.
    #[serde(flatten)]
    #[schema(additional_properties = true)]
    pub counts: BTreeMap<&'static str, u64>,
}

impl JobReport {
    pub fn new(job: JobName, as_of: NaiveDate) -> JobReport {
        JobReport {
            job: job.as_str().to_owned(),
            as_of,
            processed: 0,
            counts: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, count: &'static str, by: u64) {
        *self.counts.entry(count).or_insert(0) += by;
    }

    pub fn count(&self, count: &str) -> u64 {
        self.counts.get(count).copied().unwrap_or(0)
    }
}

/// Who asked for a run through the API: its audit entries name them and
/// carry the request's id, like every change a request makes.
#[derive(Debug, Clone)]
pub struct JobOrigin {
    pub actor_id: Uuid,
    pub meta: RequestMeta,
}

/// The rule for a job's as-of date: not after `today`. The books never run
/// ahead of the calendar (a future day would charge late fees early).
pub fn check_as_of(as_of: NaiveDate, today: NaiveDate) -> Result<NaiveDate, String> {
    if as_of > today {
        Err(format!("must not be after today ({today})"))
    } else {
        Ok(as_of)
    }
}

/// Runs `job` for `as_of` and records the run in `job_runs`.
pub async fn run(
    state: &AppState,
    job: JobName,
    as_of: NaiveDate,
    trigger: Trigger,
    origin: Option<JobOrigin>,
) -> anyhow::Result<JobReport> {
    let period = format!("{}-{}", trigger.as_str().to_lowercase(), Uuid::now_v7());
    let run_id = start_run(state, job, as_of, trigger, &period)
        .await?
        .ok_or_else(|| anyhow::anyhow!("could not record the run"))?;
    execute(state, job, as_of, run_id, origin.map(Arc::new)).await
}

/// Inserts the `job_runs` row; `None` when a scheduled run of this period
/// was already claimed (by this or another instance).
async fn start_run(
    state: &AppState,
    job: JobName,
    as_of: NaiveDate,
    trigger: Trigger,
    period: &str,
) -> anyhow::Result<Option<Uuid>> {
    let id = Uuid::now_v7();
    let row = job_run::ActiveModel {
        id: Set(id),
        job: Set(job.as_str().to_owned()),
        period: Set(period.to_owned()),
        as_of: Set(as_of),
        triggered_by: Set(trigger.as_str().to_owned()),
        instance: Set(crate::app::instance_name()),
        status: Set("RUNNING".to_owned()),
        processed: Set(0),
        details: Set(None),
        started_at: Set(state.now()),
        finished_at: Set(None),
    };
    // Only scheduled runs are unique per period (a partial unique index).
    let inserted = job_run::Entity::insert(row)
        .on_conflict(
            sea_orm::sea_query::OnConflict::columns([
                job_run::Column::Job,
                job_run::Column::Period,
            ])
            .target_and_where(Expr::cust("triggered_by = 'SCHEDULE'"))
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(&state.db.write)
        .await?;
    Ok((inserted == 1).then_some(id))
}

async fn execute(
    state: &AppState,
    job: JobName,
    as_of: NaiveDate,
    run_id: Uuid,
    origin: Option<Arc<JobOrigin>>,
) -> anyhow::Result<JobReport> {
    let started = std::time::Instant::now();
    let now = state.now();
    let result = match job {
        JobName::PaymentReminders => reminders::payment_reminders(state, as_of, now).await,
        JobName::OverdueCheck => overdue::overdue_check(state, as_of, origin).await,
        JobName::AuditArchive => archive::audit_archive(state, as_of, now).await,
    };
    let (status, processed, details) = match &result {
        Ok(report) => (
            "SUCCEEDED",
            report.processed,
            serde_json::to_value(report).unwrap_or(serde_json::Value::Null),
        ),
        Err(error) => (
            "FAILED",
            0,
            serde_json::json!({ "error": format!("{error:#}") }),
        ),
    };
    metrics::counter!("job_runs_total", "job" => job.as_str(), "status" => status).increment(1);
    metrics::histogram!("job_run_duration_seconds", "job" => job.as_str())
        .record(started.elapsed().as_secs_f64());
    if let Ok(report) = &result {
        metrics::counter!("job_rows_failed_total", "job" => job.as_str())
            .increment(report.count("failed"));
    }
    tracing::info!(
        job = job.as_str(),
        %as_of,
        status,
        processed,
        duration_ms = started.elapsed().as_millis() as u64,
        "job run finished"
    );
    job_run::Entity::update_many()
        .col_expr(job_run::Column::Status, Expr::value(status))
        .col_expr(
            job_run::Column::Processed,
            Expr::value(i64::try_from(processed).unwrap_or(i64::MAX)),
        )
        .col_expr(job_run::Column::Details, Expr::value(details))
        .col_expr(job_run::Column::FinishedAt, Expr::value(finished_at(state)))
        .filter(job_run::Column::Id.eq(run_id))
        .exec(&state.db.write)
        .await?;
    result
}

fn finished_at(state: &AppState) -> DateTime<Utc> {
    state.now()
}

/// The latest `limit` runs, newest first (the console's job page).
pub async fn recent_runs(
    connection: &impl sea_orm::ConnectionTrait,
    limit: u64,
) -> Result<Vec<job_run::Model>, sea_orm::DbErr> {
    use sea_orm::{QueryOrder, QuerySelect};
    job_run::Entity::find()
        .order_by_desc(job_run::Column::StartedAt)
        .order_by_desc(job_run::Column::Id)
        .limit(limit)
        .all(connection)
        .await
}
