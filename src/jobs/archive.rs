//! `audit-archive`: moves audit entries older than the retention period
//! from the live table into the archive table, a batch per transaction.
//! Each batch is copied (ignoring ids already archived) and then deleted,
//! so an interrupted run loses nothing and the next one finishes it.

use chrono::{DateTime, Days, NaiveDate, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::{BATCH_SIZE, JobName, JobReport};
use crate::app::AppState;
use crate::db::entities::{audit_log, audit_log_archive};

pub async fn audit_archive(
    state: &AppState,
    as_of: NaiveDate,
    now: DateTime<Utc>,
) -> anyhow::Result<JobReport> {
    let mut report = JobReport::new(JobName::AuditArchive, as_of);
    let cutoff_date = as_of
        .checked_sub_days(Days::new(u64::from(state.config.audit_retention_days)))
        .ok_or_else(|| anyhow::anyhow!("date underflow"))?;
    // Midnight at the start of the cutoff day, in the service time zone.
    let cutoff = cutoff_date
        .and_hms_opt(0, 0, 0)
        .and_then(|midnight| {
            midnight
                .and_local_timezone(state.config.timezone)
                .earliest()
        })
        .map(|local| local.with_timezone(&Utc))
        .ok_or_else(|| anyhow::anyhow!("no midnight on {cutoff_date}"))?;
    loop {
        let batch = audit_log::Entity::find()
            .filter(audit_log::Column::CreatedAt.lt(cutoff))
            .order_by_asc(audit_log::Column::CreatedAt)
            .order_by_asc(audit_log::Column::Id)
            .limit(BATCH_SIZE)
            .all(&state.db.write)
            .await?;
        if batch.is_empty() {
            break;
        }
        report.processed += batch.len() as u64;
        let ids: Vec<Uuid> = batch.iter().map(|row| row.id).collect();
        let archived = batch.into_iter().map(|row| audit_log_archive::ActiveModel {
            id: Set(row.id),
            actor_id: Set(row.actor_id),
            action: Set(row.action),
            entity_type: Set(row.entity_type),
            entity_id: Set(row.entity_id),
            details: Set(row.details),
            ip: Set(row.ip),
            request_id: Set(row.request_id),
            created_at: Set(row.created_at),
            archived_at: Set(now),
        });
        let transaction = state.db.begin_write().await?;
        audit_log_archive::Entity::insert_many(archived)
            .on_conflict(
                OnConflict::column(audit_log_archive::Column::Id)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&transaction)
            .await?;
        let moved = audit_log::Entity::delete_many()
            .filter(audit_log::Column::Id.is_in(ids))
            .exec(&transaction)
            .await?;
        transaction.commit().await?;
        report.add("archived", moved.rows_affected);
    }
    report.add("archived", 0);
    Ok(report)
}
