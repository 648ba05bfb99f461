//! `overdue-check`: marks installments due before `as_of` and not fully
//! paid as OVERDUE (and their loans), applies the late fee once per
//! installment ever, and tells the borrower.
//!
//! This is the ledger's "bringing a loan up to date" done in bulk: the
//! late fee is `LATE_FEE_PERCENT` of what the installment still owed
//! before the fee (`amountDue − amountPaid`), rounded half-even to the
//! cent, decided once the installment is more than `LATE_FEE_GRACE_DAYS`
//! days overdue (`LateFeeRule`, as the replay decides it). Every operation
//! on a loan brings it up to date first, so the stored amount still owed is
//! what was unpaid at the end of the fee day, as the one rule requires.
//! `penalty_applied_on` records that the fee was decided, so no later run
//! decides it again; notification dedup keys do the same for messages (and
//! are shared with the operations, so each is written once, whoever is
//! first).
//!
//! The job walks unpaid past-due installments in index order, a page at a
//! time. For each page it locks the loans involved (in id order, the lock
//! order payments use too, so the two cannot deadlock), re-reads their
//! installments under the lock, works out every change in memory
//! ([`plan`]), and writes it with a handful of set-based statements. If a
//! page fails, it is retried loan by loan, each in its own savepoint, so
//! one bad row is logged and left for the next run without holding up the
//! rest.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{CaseStatement, Expr, Func};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, ExprTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use super::{BATCH_SIZE, JobName, JobReport};
use std::sync::Arc;

use super::JobOrigin;
use crate::app::AppState;
use crate::audit::{self, AuditAction, AuditEntry, EntityType};
use crate::cache::CacheKind;
use crate::db::entities::{InstallmentStatus, LoanStatus, installment, loan};
use crate::http::client::RequestMeta;
use crate::ledger::LateFeeRule;
use crate::money::Money;
use crate::notifications::{self, NewNotification};
use crate::payments::service::past_due_unpaid;
use crate::servicing::{self, FeeChange};
use sea_orm::Order;

/// Batches written at the same time: one can be planned while the
/// database writes another. (On SQLite the single writer takes them in
/// turn.)
const BATCHES_IN_FLIGHT: usize = 2;

pub async fn overdue_check(
    state: &AppState,
    as_of: NaiveDate,
    now: DateTime<Utc>,
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
        // Loans with an installment not yet marked or not yet charged; a
        // re-run finds none and writes nothing.
        let loans: Vec<Uuid> = page
            .iter()
            .filter(|row| {
                row.status != InstallmentStatus::Overdue
                    || (row.penalty_applied_on.is_none() && fee.grace_is_over(row.due_date, as_of))
            })
            .map(|row| row.loan_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if loans.is_empty() {
            continue;
        }
        while in_flight.len() >= BATCHES_IN_FLIGHT {
            if let Some(done) = in_flight.join_next().await {
                done??.add_to(&mut report);
            }
        }
        let (state, origin) = (state.clone(), origin.clone());
        in_flight.spawn(async move {
            process_batch(&state, loans, as_of, now, fee, origin.as_deref()).await
        });
    }
    while let Some(done) = in_flight.join_next().await {
        done??.add_to(&mut report);
    }
    // The delinquency gauges, for the book as the run left it today.
    let buckets = crate::reports::bucket_rows(&state.db.write, state.today()).await?;
    crate::reports::publish(&buckets);
    Ok(report)
}

/// Processes one batch of loans in one transaction; if that fails, loan by
/// loan, each in its own savepoint.
async fn process_batch(
    state: &AppState,
    loans: Vec<Uuid>,
    as_of: NaiveDate,
    now: DateTime<Utc>,
    fee: LateFeeRule,
    origin: Option<&JobOrigin>,
) -> anyhow::Result<Outcome> {
    let transaction = state.db.begin_write().await?;
    let batch = {
        let savepoint = transaction.begin().await?;
        match process_loans(&savepoint, &loans, as_of, now, fee, origin).await {
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
        None => {
            let mut total = Outcome {
                batches_retried: 1,
                ..Outcome::default()
            };
            for loan_id in &loans {
                let savepoint = transaction.begin().await?;
                match process_loans(
                    &savepoint,
                    std::slice::from_ref(loan_id),
                    as_of,
                    now,
                    fee,
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
            total
        }
    };
    transaction.commit().await?;
    state.cache.invalidate_all_of(CacheKind::Loan, &loans).await;
    Ok(outcome)
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

/// What the job will write for a set of loans.
#[derive(Debug, Default)]
struct Plan {
    /// Installments to mark OVERDUE, with the fee to add (0 for none) and
    /// whether the fee is being applied now.
    installments: Vec<(Uuid, Money, bool)>,
    /// Loans to change: penalty to add and whether to mark it OVERDUE.
    loans: BTreeMap<Uuid, (Money, bool)>,
    notifications: Vec<NewNotification>,
    audit: Vec<AuditEntry>,
    outcome: Outcome,
}

/// Counts of what a plan did.
#[derive(Debug, Default)]
struct Outcome {
    installments_marked: u64,
    penalties_applied: u64,
    loans_marked: u64,
    notifications: u64,
    /// Batches that failed whole and were retried loan by loan.
    batches_retried: u64,
    failed: u64,
}

impl Outcome {
    fn merge(&mut self, other: &Outcome) {
        self.installments_marked += other.installments_marked;
        self.penalties_applied += other.penalties_applied;
        self.loans_marked += other.loans_marked;
        self.notifications += other.notifications;
        self.batches_retried += other.batches_retried;
        self.failed += other.failed;
    }

    fn add_to(&self, report: &mut JobReport) {
        report.add("installmentsMarkedOverdue", self.installments_marked);
        report.add("penaltiesApplied", self.penalties_applied);
        report.add("loansMarkedOverdue", self.loans_marked);
        report.add("notificationsWritten", self.notifications);
        report.add("batchesRetried", self.batches_retried);
        report.add("failed", self.failed);
    }
}

/// Works out every change for `loans` (locked) and their unpaid past-due
/// `installments`, with no I/O.
fn plan(
    loans: &[loan::Model],
    installments: &[installment::Model],
    as_of: NaiveDate,
    fee: LateFeeRule,
    actor: Option<Uuid>,
) -> anyhow::Result<Plan> {
    let mut plan = Plan::default();
    let by_id: BTreeMap<Uuid, &loan::Model> = loans.iter().map(|loan| (loan.id, loan)).collect();
    for row in installments {
        let Some(loan) = by_id
            .get(&row.loan_id)
            .filter(|loan| loan.status.is_active())
        else {
            continue;
        };
        let newly_overdue = row.status != InstallmentStatus::Overdue;
        let figures = row.figures();
        let charge = if row.penalty_applied_on.is_none() && fee.grace_is_over(row.due_date, as_of) {
            let charge = fee
                .fee_on(&figures)
                .ok_or_else(|| anyhow::anyhow!("late fee overflows"))?;
            Some(charge)
        } else {
            None
        };
        if !newly_overdue && charge.is_none() {
            continue;
        }
        let added = charge.unwrap_or(Money::ZERO);
        plan.installments.push((row.id, added, charge.is_some()));
        let owed = figures.still_owed() + added;
        if newly_overdue {
            plan.outcome.installments_marked += 1;
            plan.notifications.push(servicing::overdue_notice(
                loan,
                row.id,
                row.number,
                row.due_date,
                owed,
            ));
        }
        if added.is_positive() {
            plan.outcome.penalties_applied += 1;
            let change = FeeChange {
                installment_id: row.id,
                number: row.number,
                due_date: row.due_date,
                previous: figures.due.penalty,
                penalty: figures.due.penalty + added,
                owed,
            };
            plan.notifications
                .push(servicing::fee_notice(loan, &change));
            plan.audit
                .push(servicing::fee_audit(loan.id, &change, actor));
        }
        let change = plan.loans.entry(loan.id).or_insert((Money::ZERO, false));
        change.0 += added;
    }
    // A loan with any unpaid past-due installment is OVERDUE.
    let past_due: BTreeSet<Uuid> = installments.iter().map(|row| row.loan_id).collect();
    for loan in loans {
        if loan.status == LoanStatus::Approved && past_due.contains(&loan.id) {
            loan.status.transition(LoanStatus::Overdue)?;
            plan.loans.entry(loan.id).or_insert((Money::ZERO, false)).1 = true;
            plan.outcome.loans_marked += 1;
            plan.audit.push(
                AuditEntry::new(AuditAction::LoanOverdue, actor)
                    .entity(EntityType::Loan, loan.id)
                    .details(json!({ "asOf": as_of })),
            );
        }
    }
    Ok(plan)
}

async fn process_loans(
    transaction: &DatabaseTransaction,
    loan_ids: &[Uuid],
    as_of: NaiveDate,
    now: DateTime<Utc>,
    fee: LateFeeRule,
    origin: Option<&JobOrigin>,
) -> anyhow::Result<Outcome> {
    let loans = crate::servicing::lock_loans(transaction, loan_ids).await?;
    let installments = installment::Entity::find()
        .filter(installment::Column::LoanId.is_in(loan_ids.iter().copied()))
        .filter(installment::overdue_on(as_of))
        .order_by_asc(installment::Column::LoanId)
        .order_by_asc(installment::Column::Number)
        .all(transaction)
        .await?;
    let mut plan = plan(
        &loans,
        &installments,
        as_of,
        fee,
        origin.map(|o| o.actor_id),
    )?;
    apply(transaction, &mut plan, as_of, now, origin.map(|o| &o.meta)).await?;
    Ok(plan.outcome)
}

/// `CASE id WHEN … THEN amount … ELSE 0 END`, or `None` when no row gets
/// anything (an empty CASE is not SQL).
fn added_amounts<C: ColumnTrait>(id: C, amounts: &[(Uuid, Money)]) -> Option<Expr> {
    if amounts.is_empty() {
        return None;
    }
    let case = amounts
        .iter()
        .fold(CaseStatement::new(), |case, (row, amount)| {
            case.case(id.eq(*row), Expr::val(amount.minor()))
        })
        .finally(Expr::val(0i64));
    Some(Expr::Case(Box::new(case)))
}

/// Writes a plan with one statement per table.
async fn apply(
    transaction: &impl ConnectionTrait,
    plan: &mut Plan,
    as_of: NaiveDate,
    now: DateTime<Utc>,
    meta: Option<&RequestMeta>,
) -> anyhow::Result<()> {
    let backend = transaction.get_database_backend();
    // Every installment costs four bound values (its id in the filter, id
    // and fee in the CASE, id in the charged list) and every loan four.
    for chunk in plan
        .installments
        .chunks(crate::db::rows_per_statement(backend, 4))
    {
        mark_installments(transaction, chunk, as_of, now).await?;
    }
    let loans: Vec<(Uuid, (Money, bool))> = plan
        .loans
        .iter()
        .map(|(id, change)| (*id, *change))
        .collect();
    for chunk in loans.chunks(crate::db::rows_per_statement(backend, 4)) {
        update_loans(transaction, chunk, now).await?;
    }
    let notifications = std::mem::take(&mut plan.notifications);
    plan.outcome.notifications =
        notifications::write_many_once(transaction, notifications, now).await?;
    audit::record_many(transaction, std::mem::take(&mut plan.audit), meta, now).await?;
    Ok(())
}

/// Marks `installments` OVERDUE (keeping an earlier `overdue_since`) and
/// adds their fees, in one statement.
async fn mark_installments(
    transaction: &impl ConnectionTrait,
    installments: &[(Uuid, Money, bool)],
    as_of: NaiveDate,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let ids: Vec<Uuid> = installments.iter().map(|(id, _, _)| *id).collect();
    let charged: Vec<Uuid> = installments
        .iter()
        .filter(|(_, _, now)| *now)
        .map(|(id, _, _)| *id)
        .collect();
    let mut update = installment::Entity::update_many()
        .col_expr(
            installment::Column::Status,
            Expr::val(InstallmentStatus::Overdue),
        )
        .col_expr(
            installment::Column::OverdueSince,
            Func::coalesce([
                Expr::col(installment::Column::OverdueSince),
                Expr::val(as_of),
            ])
            .into(),
        )
        .col_expr(installment::Column::UpdatedAt, Expr::val(now));
    let fees: Vec<(Uuid, Money)> = installments
        .iter()
        .filter(|(_, added, _)| added.is_positive())
        .map(|(id, added, _)| (*id, *added))
        .collect();
    if let Some(fees) = added_amounts(installment::Column::Id, &fees) {
        update = update.col_expr(
            installment::Column::PenaltyMinor,
            Expr::col(installment::Column::PenaltyMinor).add(fees),
        );
    }
    if !charged.is_empty() {
        // Only the charged ones get the date; others keep theirs.
        update = update.col_expr(
            installment::Column::PenaltyAppliedOn,
            Expr::Case(Box::new(
                CaseStatement::new()
                    .case(installment::Column::Id.is_in(charged), Expr::val(as_of))
                    .finally(Expr::col(installment::Column::PenaltyAppliedOn)),
            )),
        );
    }
    update
        .filter(installment::Column::Id.is_in(ids))
        .exec(transaction)
        .await?;
    Ok(())
}

/// Adds each loan's new penalties and marks the newly overdue ones, in one
/// statement.
async fn update_loans(
    transaction: &impl ConnectionTrait,
    loans: &[(Uuid, (Money, bool))],
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let ids: Vec<Uuid> = loans.iter().map(|(id, _)| *id).collect();
    let newly_overdue: Vec<Uuid> = loans
        .iter()
        .filter(|(_, (_, mark))| *mark)
        .map(|(id, _)| *id)
        .collect();
    let penalties: Vec<(Uuid, Money)> = loans
        .iter()
        .filter(|(_, (added, _))| added.is_positive())
        .map(|(id, (added, _))| (*id, *added))
        .collect();
    let mut update = loan::Entity::update_many().col_expr(loan::Column::UpdatedAt, Expr::val(now));
    if let Some(penalties) = added_amounts(loan::Column::Id, &penalties) {
        update = update.col_expr(
            loan::Column::PenaltiesMinor,
            Expr::col(loan::Column::PenaltiesMinor).add(penalties),
        );
    }
    if !newly_overdue.is_empty() {
        update = update.col_expr(
            loan::Column::Status,
            Expr::Case(Box::new(
                CaseStatement::new()
                    .case(
                        loan::Column::Id.is_in(newly_overdue),
                        Expr::val(LoanStatus::Overdue),
                    )
                    .finally(Expr::col(loan::Column::Status)),
            )),
        );
    }
    update
        .filter(loan::Column::Id.is_in(ids))
        .exec(transaction)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::entities::NotificationKind;
    use crate::money::Percent;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    fn moment() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
            .expect("timestamp")
            .with_timezone(&Utc)
    }

    fn loan(status: LoanStatus) -> loan::Model {
        loan::Model {
            id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            status,
            currency: "USD".to_owned(),
            principal_minor: 100_000,
            annual_interest_rate: "12.0".to_owned(),
            term_months: 12,
            purpose: None,
            installment_minor: 8_885,
            total_payable_minor: 106_619,
            total_paid_minor: 0,
            penalties_minor: 0,
            penalties_paid_minor: 0,
            next_due_date: Some(date("2026-02-15")),
            first_due_date: Some(date("2026-02-15")),
            approved_by: None,
            approved_at: Some(moment()),
            rejected_by: None,
            rejected_at: None,
            rejection_reason: None,
            cancelled_at: None,
            paid_off_at: None,
            created_at: moment(),
            updated_at: moment(),
            principal_paid_minor: 0,
            interest_paid_minor: 0,
        }
    }

    /// Installment 1 of `loan`: 10.00 interest and 78.85 principal, of
    /// which `paid` minor units of interest then principal are paid.
    fn installment(loan: &loan::Model, due: &str, paid: i64) -> installment::Model {
        let interest_paid = std::cmp::min(paid, 1_000);
        installment::Model {
            id: Uuid::now_v7(),
            loan_id: loan.id,
            user_id: loan.user_id,
            number: 1,
            due_date: date(due),
            principal_minor: 7_885,
            interest_minor: 1_000,
            penalty_minor: 0,
            principal_paid_minor: paid - interest_paid,
            interest_paid_minor: interest_paid,
            penalty_paid_minor: 0,
            status: if paid > 0 {
                InstallmentStatus::Partial
            } else {
                InstallmentStatus::Pending
            },
            overdue_since: None,
            penalty_applied_on: None,
            paid_at: None,
            created_at: moment(),
            updated_at: moment(),
        }
    }

    fn rule(grace_days: u32) -> LateFeeRule {
        LateFeeRule {
            percent: Percent::parse("5").expect("percent"),
            grace_days,
        }
    }

    /// The plan for one loan with one past-due installment.
    fn plan_one(
        loan: &loan::Model,
        row: &installment::Model,
        as_of: NaiveDate,
        rule: LateFeeRule,
    ) -> Plan {
        plan(
            std::slice::from_ref(loan),
            std::slice::from_ref(row),
            as_of,
            rule,
            None,
        )
        .expect("plan")
    }

    #[test]
    fn an_installment_past_its_grace_is_marked_charged_and_notified_once() {
        let loan = loan(LoanStatus::Approved);
        let row = installment(&loan, "2026-02-15", 885);
        let plan = plan_one(&loan, &row, date("2026-02-16"), rule(0));
        // 5 % of the 80.00 still owed.
        assert_eq!(
            plan.installments,
            vec![(row.id, Money::from_minor(400), true)]
        );
        assert_eq!(
            plan.loans.get(&loan.id),
            Some(&(Money::from_minor(400), true))
        );
        let kinds: Vec<_> = plan.notifications.iter().map(|n| n.kind).collect();
        assert_eq!(
            kinds,
            vec![
                NotificationKind::PaymentOverdue,
                NotificationKind::PenaltyApplied
            ]
        );
        assert_eq!(
            plan.notifications[0].message,
            "Installment #1 of your loan was due on 2026-02-15 and is overdue: 84.00 USD is still owed."
        );
        assert_eq!(
            plan.notifications[1].dedup_key.as_deref(),
            Some(format!("penalty:{}", row.id).as_str())
        );
        let actions: Vec<_> = plan.audit.iter().map(|a| a.action).collect();
        assert_eq!(
            actions,
            vec![AuditAction::PenaltyApplied, AuditAction::LoanOverdue]
        );
        assert_eq!(
            plan.audit[0].details,
            serde_json::json!({ "installmentNumber": 1, "previous": "0.00", "penalty": "4.00" })
        );
        assert_eq!(
            (
                plan.outcome.installments_marked,
                plan.outcome.penalties_applied,
                plan.outcome.loans_marked
            ),
            (1, 1, 1)
        );
    }

    #[test]
    fn within_the_grace_period_it_is_marked_but_not_charged() {
        let loan = loan(LoanStatus::Approved);
        let row = installment(&loan, "2026-02-15", 0);
        let plan = plan_one(&loan, &row, date("2026-02-18"), rule(3));
        assert_eq!(plan.installments, vec![(row.id, Money::ZERO, false)]);
        assert_eq!(plan.loans.get(&loan.id), Some(&(Money::ZERO, true)));
        assert_eq!(plan.notifications.len(), 1);
        assert_eq!(plan.outcome.penalties_applied, 0);
    }

    #[test]
    fn what_was_already_marked_and_charged_is_left_alone() {
        let loan = loan(LoanStatus::Overdue);
        let mut row = installment(&loan, "2026-02-15", 0);
        row.status = InstallmentStatus::Overdue;
        row.penalty_applied_on = Some(date("2026-02-16"));
        row.penalty_minor = 444;
        let plan = plan_one(&loan, &row, date("2026-03-20"), rule(0));
        assert!(plan.installments.is_empty());
        assert!(plan.loans.is_empty());
        assert!(plan.notifications.is_empty());
        assert!(plan.audit.is_empty());
    }

    #[test]
    fn loans_no_longer_being_repaid_are_skipped() {
        let loan = loan(LoanStatus::Paid);
        let row = installment(&loan, "2026-02-15", 0);
        let plan = plan_one(&loan, &row, date("2026-03-20"), rule(0));
        assert!(plan.installments.is_empty());
        assert!(plan.loans.is_empty());
    }

    #[test]
    fn a_zero_percent_fee_is_no_fee() {
        let loan = loan(LoanStatus::Approved);
        let row = installment(&loan, "2026-02-15", 0);
        let free = LateFeeRule {
            percent: Percent::zero(),
            grace_days: 0,
        };
        let plan = plan_one(&loan, &row, date("2026-02-20"), free);
        assert_eq!(plan.installments, vec![(row.id, Money::ZERO, true)]);
        let kinds: Vec<_> = plan.notifications.iter().map(|n| n.kind).collect();
        assert_eq!(kinds, vec![NotificationKind::PaymentOverdue]);
        assert_eq!(plan.outcome.penalties_applied, 0);
    }
}
