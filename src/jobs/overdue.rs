//! `overdue-check`: brings every loan with an unpaid past-due installment
//! up to `as_of`, exactly as any operation on the loan would (the servicing
//! pipeline's [`servicing::bring_up_to_date`]): installments due before
//! `as_of` and not fully paid become OVERDUE (and their loans), the late
//! fee of each installment whose grace ended before `as_of` is decided once
//! ever by the one rule, and the borrower is told (notification dedup keys
//! are shared with the operations, so each is written once, whoever is
//! first).
//!
//! The job walks unpaid past-due installments in index order, a page at a
//! time. For each page it hands the loans involved to the pipeline, which
//! locks them (in id order, the lock order payments use too, so the two
//! cannot deadlock), re-reads their installments under the lock, works out
//! every change in memory and writes it with a handful of set-based
//! statements. If a page fails, it is retried loan by loan, each in its own
//! savepoint, so one bad row is logged and left for the next run without
//! holding up the rest.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::NaiveDate;
use sea_orm::{DatabaseTransaction, Order, QuerySelect, TransactionTrait};
use uuid::Uuid;

use super::{BATCH_SIZE, JobName, JobOrigin, JobReport};
use crate::app::AppState;
use crate::cache::CacheKind;
use crate::db::entities::{InstallmentStatus, installment};
use crate::ledger::LateFeeRule;
use crate::payments::service::past_due_unpaid;
use crate::servicing::{self, BroughtUpToDate, Requester};

/// Batches written at the same time: one can be planned while the
/// database writes another. (On SQLite the single writer takes them in
/// turn.)
const BATCHES_IN_FLIGHT: usize = 2;

pub async fn overdue_check(
    state: &AppState,
    as_of: NaiveDate,
    origin: Option<Arc<JobOrigin>>,
) -> anyhow::Result<JobReport> {
    let mut report = JobReport::new(JobName::OverdueCheck, as_of);
    let fee = state.config.late_fee_rule();
    for count in [
        "installmentsMarkedOverdue",
        "penaltiesApplied",
        "loansMarkedOverdue",
        "notificationsWritten",
        "batchesRetried",
        "failed",
    ] {
        report.add(count, 0);
    }
    let mut in_flight: tokio::task::JoinSet<anyhow::Result<Outcome>> = tokio::task::JoinSet::new();
    let mut after: Option<(NaiveDate, Uuid, i32)> = None;
    loop {
        let page = overdue_page(state, as_of, after).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some((last.due_date, last.loan_id, last.number));
        report.processed += page.len() as u64;
        let loans = needing_work(&page, as_of, fee);
        if loans.is_empty() {
            continue;
        }
        while in_flight.len() >= BATCHES_IN_FLIGHT {
            if let Some(done) = in_flight.join_next().await {
                done??.add_to(&mut report);
            }
        }
        let (state, origin) = (state.clone(), origin.clone());
        in_flight
            .spawn(async move { process_batch(&state, loans, as_of, origin.as_deref()).await });
    }
    while let Some(done) = in_flight.join_next().await {
        done??.add_to(&mut report);
    }
    // The delinquency gauges, for the book as the run left it today.
    let delinquency = crate::reports::delinquency(&state.db.write, state.today()).await?;
    crate::reports::publish(&delinquency);
    Ok(report)
}

/// The loans of `page` with an installment not yet marked overdue, or
/// whose fee day has passed and is not yet decided; a re-run finds none
/// and writes nothing.
fn needing_work(page: &[installment::Model], as_of: NaiveDate, fee: LateFeeRule) -> Vec<Uuid> {
    page.iter()
        .filter(|row| {
            row.status != InstallmentStatus::Overdue
                || (row.penalty_applied_on.is_none() && fee.grace_is_over(row.due_date, as_of))
        })
        .map(|row| row.loan_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Processes one batch of loans in one transaction; if that fails, loan by
/// loan, each in its own savepoint.
async fn process_batch(
    state: &AppState,
    loans: Vec<Uuid>,
    as_of: NaiveDate,
    origin: Option<&JobOrigin>,
) -> anyhow::Result<Outcome> {
    let transaction = state.db.begin_write().await?;
    let batch = {
        let savepoint = transaction.begin().await?;
        match process_loans(state, &savepoint, &loans, as_of, origin).await {
            Ok(outcome) => savepoint.commit().await.map(|()| Some(outcome))?,
            Err(error) => {
                savepoint.rollback().await?;
                tracing::warn!(
                    error = format!("{error:#}"),
                    "overdue-check: batch failed; retrying loan by loan"
                );
                None
            }
        }
    };
    let outcome = match batch {
        Some(outcome) => outcome,
        None => loan_by_loan(state, &transaction, &loans, as_of, origin).await?,
    };
    transaction.commit().await?;
    state.cache.invalidate_all_of(CacheKind::Loan, &loans).await;
    Ok(outcome)
}

/// The retry of a failed batch: each loan in its own savepoint, a failure
/// logged and left for the next run.
async fn loan_by_loan(
    state: &AppState,
    transaction: &DatabaseTransaction,
    loans: &[Uuid],
    as_of: NaiveDate,
    origin: Option<&JobOrigin>,
) -> anyhow::Result<Outcome> {
    let mut total = Outcome {
        batches_retried: 1,
        ..Outcome::default()
    };
    for loan_id in loans {
        let savepoint = transaction.begin().await?;
        match process_loans(
            state,
            &savepoint,
            std::slice::from_ref(loan_id),
            as_of,
            origin,
        )
        .await
        {
            Ok(outcome) => {
                savepoint.commit().await?;
                total.merge(&outcome);
            }
            Err(error) => {
                savepoint.rollback().await?;
                tracing::error!(%loan_id, error = format!("{error:#}"), "overdue-check: loan failed; will retry next run");
                total.failed += 1;
            }
        }
    }
    Ok(total)
}

/// One page of unpaid installments due before `as_of`, in index order.
async fn overdue_page(
    state: &AppState,
    as_of: NaiveDate,
    after: Option<(NaiveDate, Uuid, i32)>,
) -> anyhow::Result<Vec<installment::Model>> {
    let query = past_due_unpaid(as_of, Order::Asc, after).limit(BATCH_SIZE);
    Ok(query.all(&state.db.write).await?)
}

/// Counts of what a run did.
#[derive(Debug, Default)]
struct Outcome {
    done: BroughtUpToDate,
    /// Batches that failed whole and were retried loan by loan.
    batches_retried: u64,
    failed: u64,
}

impl Outcome {
    fn merge(&mut self, other: &Outcome) {
        self.done.installments_marked_overdue += other.done.installments_marked_overdue;
        self.done.penalties_applied += other.done.penalties_applied;
        self.done.loans_marked_overdue += other.done.loans_marked_overdue;
        self.done.notifications_written += other.done.notifications_written;
        self.batches_retried += other.batches_retried;
        self.failed += other.failed;
    }

    fn add_to(&self, report: &mut JobReport) {
        report.add(
            "installmentsMarkedOverdue",
            self.done.installments_marked_overdue,
        );
        report.add("penaltiesApplied", self.done.penalties_applied);
        report.add("loansMarkedOverdue", self.done.loans_marked_overdue);
        report.add("notificationsWritten", self.done.notifications_written);
        report.add("batchesRetried", self.batches_retried);
        report.add("failed", self.failed);
    }
}

async fn process_loans(
    state: &AppState,
    transaction: &DatabaseTransaction,
    loan_ids: &[Uuid],
    as_of: NaiveDate,
    origin: Option<&JobOrigin>,
) -> anyhow::Result<Outcome> {
    let requester = Requester {
        actor_id: origin.map(|origin| origin.actor_id),
        meta: origin.map(|origin| origin.meta.clone()),
    };
    let done =
        servicing::bring_up_to_date(transaction, &state.servicing(), loan_ids, as_of, requester)
            .await?;
    Ok(Outcome {
        done,
        ..Outcome::default()
    })
}
