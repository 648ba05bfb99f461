//! Runs the jobs on their cron schedules (in the service time zone).
//!
//! Every instance runs the same schedule. Before running a tick, an
//! instance claims it by inserting `(job, tick time)` into `job_runs`,
//! where a unique index lets exactly one insert succeed: with several
//! instances each scheduled run happens once.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::watch;

use super::{JobName, JobReport, Trigger};
use crate::app::AppState;

/// The cron expression of each job, from configuration.
pub fn schedules(state: &AppState) -> Vec<(JobName, String)> {
    vec![
        (
            JobName::PaymentReminders,
            state.config.payment_reminders_cron.clone(),
        ),
        (
            JobName::OverdueCheck,
            state.config.overdue_check_cron.clone(),
        ),
        (
            JobName::AuditArchive,
            state.config.audit_archive_cron.clone(),
        ),
    ]
}

/// Runs every job on its schedule until `shutdown` turns true. A job run
/// in progress is finished before the loop stops.
pub async fn run_schedule(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let mut tasks = tokio::task::JoinSet::new();
    for (job, expression) in schedules(&state) {
        let schedule = match cron::Schedule::from_str(&expression) {
            Ok(schedule) => schedule,
            Err(error) => {
                tracing::error!(job = job.as_str(), %error, "invalid cron expression; job not scheduled");
                continue;
            }
        };
        let state = state.clone();
        let mut shutdown = shutdown.clone();
        tasks.spawn(async move {
            loop {
                let zone = state.config.timezone;
                let now = state.now().with_timezone(&zone);
                let Some(tick) = schedule.after(&now).next() else {
                    return;
                };
                let wait = (tick.with_timezone(&Utc) - state.now())
                    .to_std()
                    .unwrap_or_default();
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
                if let Err(error) = run_tick(&state, job, tick).await {
                    tracing::error!(
                        job = job.as_str(),
                        error = format!("{error:#}"),
                        "scheduled run failed"
                    );
                }
            }
        });
    }
    tracing::info!(jobs = tasks.len(), "scheduler started");
    let _ = shutdown.wait_for(|stop| *stop).await;
    while tasks.join_next().await.is_some() {}
    tracing::info!("scheduler stopped");
}

/// Claims and runs one scheduled tick of `job`. `None` when another
/// instance (or an earlier attempt) already claimed this tick.
pub async fn run_tick(
    state: &AppState,
    job: JobName,
    tick: DateTime<Tz>,
) -> anyhow::Result<Option<JobReport>> {
    let period = tick.with_timezone(&Utc).to_rfc3339();
    let as_of = tick.date_naive();
    let Some(run_id) = super::start_run(state, job, as_of, Trigger::Schedule, &period).await?
    else {
        tracing::debug!(job = job.as_str(), %period, "tick already claimed by another instance");
        return Ok(None);
    };
    super::execute(state, job, as_of, run_id, None)
        .await
        .map(Some)
}
