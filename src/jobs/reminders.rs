//! `payment-reminders`: a `PAYMENT_DUE_SOON` notification for every unpaid
//! installment due in exactly `REMINDER_DAYS_BEFORE` days, and a last one
//! for those due tomorrow. The dedup key (installment, days before) makes
//! each reminder happen at most once, however often the job runs.

use std::collections::HashMap;

use chrono::{DateTime, Days, NaiveDate, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, ExprTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::{BATCH_SIZE, JobName, JobReport};
use crate::app::AppState;
use crate::db::entities::{installment, loan};
use crate::notifications::{self, messages};

pub async fn payment_reminders(
    state: &AppState,
    as_of: NaiveDate,
    now: DateTime<Utc>,
) -> anyhow::Result<JobReport> {
    let mut report = JobReport::new(JobName::PaymentReminders, as_of);
    let mut lead_times = vec![u64::from(state.config.reminder_days_before), 1];
    lead_times.dedup();
    for days in lead_times {
        let due_date = as_of
            .checked_add_days(Days::new(days))
            .ok_or_else(|| anyhow::anyhow!("date overflow"))?;
        remind_for(state, due_date, days, now, &mut report).await?;
    }
    report.add("remindersWritten", 0);
    report.add("failed", 0);
    Ok(report)
}

async fn remind_for(
    state: &AppState,
    due_date: NaiveDate,
    days: u64,
    now: DateTime<Utc>,
    report: &mut JobReport,
) -> anyhow::Result<()> {
    let mut after: Option<(Uuid, i32)> = None;
    loop {
        let mut query = installment::Entity::find()
            .filter(installment::not_fully_paid())
            .filter(installment::Column::DueDate.eq(due_date))
            .order_by_asc(installment::Column::LoanId)
            .order_by_asc(installment::Column::Number)
            .limit(BATCH_SIZE);
        if let Some((loan_id, number)) = after {
            query = query.filter(
                Expr::tuple([
                    Expr::col(installment::Column::LoanId),
                    Expr::col(installment::Column::Number),
                ])
                .gt(Expr::tuple([Expr::val(loan_id), Expr::val(number)])),
            );
        }
        let page = query.all(&state.db.write).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some((last.loan_id, last.number));
        report.processed += page.len() as u64;
        let loan_ids: Vec<Uuid> = page.iter().map(|row| row.loan_id).collect();
        let loans: HashMap<Uuid, loan::Model> = loan::Entity::find()
            .filter(loan::Column::Id.is_in(loan_ids))
            .all(&state.db.write)
            .await?
            .into_iter()
            .map(|loan| (loan.id, loan))
            .collect();
        for row in page {
            let Some(loan) = loans
                .get(&row.loan_id)
                .filter(|loan| loan.status.is_active())
            else {
                continue;
            };
            let reminder = messages::payment_due_soon(
                loan,
                row.id,
                row.number,
                row.due_date,
                row.figures().still_owed(),
                days,
            );
            match notifications::write_once(&state.db.write, reminder, now).await {
                Ok(written) => report.add("remindersWritten", u64::from(written)),
                Err(error) => {
                    tracing::error!(installment_id = %row.id, error = %error, "payment-reminders: row failed; will retry next run");
                    report.add("failed", 1);
                }
            }
        }
    }
}
