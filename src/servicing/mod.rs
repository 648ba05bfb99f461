//! Keeping a loan's stored rows equal to what the ledger says of it.
//!
//! The installment rows and the loan's figures are a cache of
//! [`crate::ledger::replay`]. An operation computes the state the loan
//! must have ([`state_of`] + [`LedgerState::append`] for a payment valued
//! today, [`replay_loan`] for a backdated payment or a reversal), then
//! [`reconcile`] says which rows change and what follows from it (fees
//! charged or waived, installments newly overdue, the loan's status), and
//! [`store`] and [`announce`] write it in the caller's transaction.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::json;
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{self, AuditAction, AuditEntry, EntityType};
use crate::db::entities::{
    InstallmentStatus, LoanStatus, NotificationKind, PaymentStatus, approved_installment,
    installment, loan, payment, payment_allocation,
};
use crate::http::client::RequestMeta;
use crate::ledger::replay::{ApprovedInstallment, InstallmentState, LedgerState, Posting};
use crate::ledger::{LateFeeRule, PaymentSplit};
use crate::money::Money;
use crate::notifications::{self, NewNotification};

/// The ledger's view of stored installment rows (in number order): their
/// figures, and whether each one's fee has been decided.
pub fn state_of(rows: &[installment::Model]) -> LedgerState {
    LedgerState {
        installments: rows
            .iter()
            .map(|row| {
                let figures = row.figures();
                InstallmentState {
                    number: u32::try_from(row.number).unwrap_or_default(),
                    due_date: row.due_date,
                    principal: figures.due.principal,
                    interest: figures.due.interest,
                    penalty: figures.due.penalty,
                    paid: figures.paid,
                    fee_decided: row.penalty_applied_on.is_some(),
                }
            })
            .collect(),
        payments: Vec::new(),
        decided_before: None,
    }
}

/// A late fee the state changes.
#[derive(Debug, Clone)]
pub struct FeeChange {
    pub installment_id: Uuid,
    pub number: i32,
    pub due_date: NaiveDate,
    pub previous: Money,
    pub penalty: Money,
    /// What the installment owes with the new fee.
    pub owed: Money,
}

/// What storing a ledger state over stored rows changes.
#[derive(Debug, Clone)]
pub struct Reconciliation {
    /// Every row, as it must now be stored (in the order given).
    pub rows: Vec<installment::Model>,
    /// Indexes into `rows` of the rows that change.
    pub changed: Vec<usize>,
    pub fees: Vec<FeeChange>,
    /// Indexes into `rows` of the installments that become OVERDUE.
    pub newly_overdue: Vec<usize>,
    /// The loan as it must now be stored.
    pub loan: loan::Model,
    pub previous_status: LoanStatus,
    /// The day the state is as of.
    pub today: NaiveDate,
}

impl Reconciliation {
    pub fn loan_changed(&self, before: &loan::Model) -> bool {
        let after = &self.loan;
        (
            after.status,
            after.total_paid_minor,
            after.penalties_minor,
            after.penalties_paid_minor,
            after.next_due_date,
            after.paid_off_at,
        ) != (
            before.status,
            before.total_paid_minor,
            before.penalties_minor,
            before.penalties_paid_minor,
            before.next_due_date,
            before.paid_off_at,
        )
    }

    pub fn outstanding(&self) -> Money {
        self.loan.totals().outstanding()
    }
}

/// The rows and loan figures `state` gives stored `rows` of `loan`, as of
/// `today`. `rows` are either every installment of the loan or (for a
/// payment valued today) every one not fully paid: the figures of the loan
/// move by the differences, so both give the same loan. `state` must hold
/// the same installments in the same order (an error otherwise, as for a
/// status change the machine refuses).
pub fn reconcile(
    loan: &loan::Model,
    rows: &[installment::Model],
    state: &LedgerState,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> anyhow::Result<Reconciliation> {
    anyhow::ensure!(
        rows.len() == state.installments.len(),
        "loan {}: {} installment rows but {} in the ledger state",
        loan.id,
        rows.len(),
        state.installments.len()
    );
    let mut after_rows = Vec::with_capacity(rows.len());
    let mut changed = Vec::new();
    let mut fees = Vec::new();
    let mut newly_overdue = Vec::new();
    let (mut paid_delta, mut penalties_delta, mut penalties_paid_delta) =
        (Money::ZERO, Money::ZERO, Money::ZERO);
    let mut any_overdue = false;
    let mut next_due_date: Option<NaiveDate> = None;
    for (index, (row, after)) in rows.iter().zip(&state.installments).enumerate() {
        let before = row.figures();
        let status = after.status(today);
        let settled = after.is_settled();
        let mut next = row.clone();
        next.penalty_minor = after.penalty.minor();
        next.principal_paid_minor = after.paid.principal.minor();
        next.interest_paid_minor = after.paid.interest.minor();
        next.penalty_paid_minor = after.paid.penalty.minor();
        next.status = status;
        next.overdue_since = if status == InstallmentStatus::Overdue {
            row.overdue_since.or(Some(today))
        } else {
            row.overdue_since.filter(|_| settled)
        };
        // A settled installment that owed no fee needs no mark: nothing
        // short of a replay from the start can make it owe again.
        next.penalty_applied_on = (after.fee_decided && (!settled || after.penalty.is_positive()))
            .then(|| row.penalty_applied_on.unwrap_or(today));
        next.paid_at = if settled {
            row.paid_at.or(Some(now))
        } else {
            None
        };
        paid_delta += after.paid.total() - before.paid.total();
        penalties_delta += after.penalty - before.due.penalty;
        penalties_paid_delta += after.paid.penalty - before.paid.penalty;
        if after.penalty != before.due.penalty {
            fees.push(FeeChange {
                installment_id: row.id,
                number: row.number,
                due_date: row.due_date,
                previous: before.due.penalty,
                penalty: after.penalty,
                owed: after.owed().total(),
            });
        }
        if status == InstallmentStatus::Overdue {
            any_overdue = true;
            if row.status != InstallmentStatus::Overdue {
                newly_overdue.push(index);
            }
        }
        if !settled {
            next_due_date = Some(next_due_date.map_or(row.due_date, |day| day.min(row.due_date)));
        }
        if next != *row {
            changed.push(index);
        }
        after_rows.push(next);
    }
    let mut next_loan = loan.clone();
    next_loan.total_paid_minor = (loan.totals().total_paid + paid_delta).minor();
    next_loan.penalties_minor = (loan.totals().penalties + penalties_delta).minor();
    next_loan.penalties_paid_minor = (loan.totals().penalties_paid + penalties_paid_delta).minor();
    next_loan.next_due_date = next_due_date;
    let status = if !next_loan.totals().outstanding().is_positive() {
        LoanStatus::Paid
    } else if any_overdue {
        LoanStatus::Overdue
    } else {
        LoanStatus::Approved
    };
    if status != loan.status {
        loan.status.transition(status)?;
    }
    next_loan.status = status;
    next_loan.paid_off_at = if status == LoanStatus::Paid {
        loan.paid_off_at.or(Some(now))
    } else {
        None
    };
    Ok(Reconciliation {
        rows: after_rows,
        changed,
        fees,
        newly_overdue,
        loan: next_loan,
        previous_status: loan.status,
        today,
    })
}

/// Writes the rows and the loan a reconciliation changes.
pub async fn store(
    connection: &impl ConnectionTrait,
    before: &loan::Model,
    reconciliation: &Reconciliation,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    for row in reconciliation
        .changed
        .iter()
        .filter_map(|index| reconciliation.rows.get(*index))
    {
        installment::Entity::update(installment::ActiveModel {
            id: Set(row.id),
            penalty_minor: Set(row.penalty_minor),
            principal_paid_minor: Set(row.principal_paid_minor),
            interest_paid_minor: Set(row.interest_paid_minor),
            penalty_paid_minor: Set(row.penalty_paid_minor),
            status: Set(row.status),
            overdue_since: Set(row.overdue_since),
            penalty_applied_on: Set(row.penalty_applied_on),
            paid_at: Set(row.paid_at),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec_without_returning(connection)
        .await?;
    }
    if reconciliation.loan_changed(before) {
        let loan = &reconciliation.loan;
        loan::Entity::update(loan::ActiveModel {
            id: Set(loan.id),
            status: Set(loan.status),
            total_paid_minor: Set(loan.total_paid_minor),
            penalties_minor: Set(loan.penalties_minor),
            penalties_paid_minor: Set(loan.penalties_paid_minor),
            next_due_date: Set(loan.next_due_date),
            paid_off_at: Set(loan.paid_off_at),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec_without_returning(connection)
        .await?;
    }
    Ok(())
}

/// The borrower's `PAYMENT_OVERDUE` notice for an installment (once per
/// installment, ever).
pub fn overdue_notice(
    loan: &loan::Model,
    installment_id: Uuid,
    number: i32,
    due_date: NaiveDate,
    owed: Money,
) -> NewNotification {
    NewNotification {
        user_id: loan.user_id,
        loan_id: loan.id,
        kind: NotificationKind::PaymentOverdue,
        title: "Payment overdue".to_owned(),
        message: format!(
            "Installment #{number} of your loan was due on {due_date} and is overdue: {owed} {} is still owed.",
            loan.currency
        ),
        dedup_key: Some(format!("overdue:{installment_id}")),
    }
}

/// The borrower's `PENALTY_APPLIED` notice (once per installment, ever: a
/// fee that comes back after a waiver is audited, not announced again).
pub fn fee_notice(loan: &loan::Model, change: &FeeChange) -> NewNotification {
    NewNotification {
        user_id: loan.user_id,
        loan_id: loan.id,
        kind: NotificationKind::PenaltyApplied,
        title: "Late fee applied".to_owned(),
        message: format!(
            "A late fee of {fee} {currency} was added to installment #{number} (due {due}). \
             It now owes {owed} {currency}.",
            fee = change.penalty,
            currency = loan.currency,
            number = change.number,
            due = change.due_date,
            owed = change.owed,
        ),
        dedup_key: Some(format!("penalty:{}", change.installment_id)),
    }
}

/// `PENALTY_APPLIED` for a fee added or raised, `PENALTY_WAIVED` for one
/// removed or lowered.
pub fn fee_audit(loan_id: Uuid, change: &FeeChange, actor: Option<Uuid>) -> AuditEntry {
    let action = if change.penalty > change.previous {
        AuditAction::PenaltyApplied
    } else {
        AuditAction::PenaltyWaived
    };
    AuditEntry::new(action, actor)
        .entity(EntityType::Loan, loan_id)
        .details(json!({
            "installmentNumber": change.number,
            "previous": change.previous.to_string(),
            "penalty": change.penalty.to_string(),
        }))
}

/// Writes what a reconciliation tells the borrower and the audit log:
/// installments newly overdue, fees applied or waived, the loan becoming
/// OVERDUE. (A loan paid off is announced by the payment that did it.)
pub async fn announce(
    connection: &impl ConnectionTrait,
    reconciliation: &Reconciliation,
    actor: Option<Uuid>,
    meta: Option<&RequestMeta>,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    let loan = &reconciliation.loan;
    let mut notices = Vec::new();
    let mut entries = Vec::new();
    for row in reconciliation
        .newly_overdue
        .iter()
        .filter_map(|index| reconciliation.rows.get(*index))
    {
        notices.push(overdue_notice(
            loan,
            row.id,
            row.number,
            row.due_date,
            row.figures().still_owed(),
        ));
    }
    for change in &reconciliation.fees {
        if change.penalty > change.previous {
            notices.push(fee_notice(loan, change));
        }
        entries.push(fee_audit(loan.id, change, actor));
    }
    if loan.status == LoanStatus::Overdue && reconciliation.previous_status != LoanStatus::Overdue {
        entries.push(
            AuditEntry::new(AuditAction::LoanOverdue, actor)
                .entity(EntityType::Loan, loan.id)
                .details(json!({ "asOf": reconciliation.today })),
        );
    }
    if !notices.is_empty() {
        notifications::write_many_once(connection, notices, now).await?;
    }
    if !entries.is_empty() {
        audit::record_many(connection, entries, meta, now).await?;
    }
    Ok(())
}

/// What a replay starts from: the schedule as approved and the posted
/// payments, in recording order.
pub struct History {
    pub approved: Vec<ApprovedInstallment>,
    pub payments: Vec<payment::Model>,
}

impl History {
    pub async fn load(
        connection: &impl ConnectionTrait,
        loan_id: Uuid,
    ) -> Result<History, sea_orm::DbErr> {
        let approved = approved_installment::Entity::find()
            .filter(approved_installment::Column::LoanId.eq(loan_id))
            .order_by_asc(approved_installment::Column::Number)
            .all(connection)
            .await?
            .into_iter()
            .map(|row| ApprovedInstallment {
                number: u32::try_from(row.number).unwrap_or_default(),
                due_date: row.due_date,
                principal: Money::from_minor(row.principal_minor),
                interest: Money::from_minor(row.interest_minor),
            })
            .collect();
        let payments = payment::Entity::find()
            .filter(payment::Column::LoanId.eq(loan_id))
            .filter(payment::Column::Status.eq(PaymentStatus::Posted))
            .order_by_asc(payment::Column::CreatedAt)
            .order_by_asc(payment::Column::Id)
            .all(connection)
            .await?;
        Ok(History { approved, payments })
    }

    /// The posted payments as the ledger takes them; `sequence` is the
    /// recording order.
    pub fn postings(&self) -> Vec<Posting> {
        self.payments
            .iter()
            .enumerate()
            .map(|(index, payment)| Posting {
                id: payment.id,
                amount: Money::from_minor(payment.amount_minor),
                value_date: payment.value_date,
                sequence: index as u64,
            })
            .collect()
    }
}

/// Every installment of a loan, in number order.
pub async fn installments_of(
    connection: &impl ConnectionTrait,
    loan_id: Uuid,
) -> Result<Vec<installment::Model>, sea_orm::DbErr> {
    installment::Entity::find()
        .filter(installment::Column::LoanId.eq(loan_id))
        .order_by_asc(installment::Column::Number)
        .all(connection)
        .await
}

/// The stored allocations of `payments`, by payment, in a comparable form.
type AllocationRows = BTreeMap<Uuid, Vec<(Uuid, i64, i64, i64)>>;

fn allocation_rows(
    rows: &[installment::Model],
    splits: &HashMap<Uuid, &PaymentSplit>,
) -> AllocationRows {
    let mut by_payment = AllocationRows::new();
    for (payment_id, split) in splits {
        let mut entries: Vec<(Uuid, i64, i64, i64)> = split
            .allocations
            .iter()
            .filter_map(|allocation| {
                let row = rows.get(allocation.index)?;
                Some((
                    row.id,
                    allocation.principal.minor(),
                    allocation.interest.minor(),
                    allocation.penalty.minor(),
                ))
            })
            .collect();
        entries.sort_unstable();
        by_payment.insert(*payment_id, entries);
    }
    by_payment
}

/// Writes each payment's portions and allocations in `state` where they
/// differ from what is stored. `payments` are the loan's payments whose
/// allocation may have changed (posted ones, and one just reversed, which
/// `state` no longer holds: its allocations are removed).
pub async fn store_payment_portions(
    connection: &impl ConnectionTrait,
    rows: &[installment::Model],
    payments: &[payment::Model],
    state: &LedgerState,
) -> Result<(), sea_orm::DbErr> {
    if payments.is_empty() {
        return Ok(());
    }
    let splits: HashMap<Uuid, &PaymentSplit> = state
        .payments
        .iter()
        .map(|applied| (applied.id, &applied.split))
        .collect();
    let wanted = allocation_rows(rows, &splits);
    // A loan may have thousands of payments: every statement below stays
    // within what the database binds.
    let backend = connection.get_database_backend();
    let ids: Vec<Uuid> = payments.iter().map(|payment| payment.id).collect();
    let mut stored = AllocationRows::new();
    for chunk in ids.chunks(crate::db::rows_per_statement(backend, 1)) {
        for row in payment_allocation::Entity::find()
            .filter(payment_allocation::Column::PaymentId.is_in(chunk.iter().copied()))
            .all(connection)
            .await?
        {
            stored.entry(row.payment_id).or_default().push((
                row.installment_id,
                row.principal_minor,
                row.interest_minor,
                row.penalty_minor,
            ));
        }
    }
    for entries in stored.values_mut() {
        entries.sort_unstable();
    }
    let empty = Vec::new();
    let mut rewritten = Vec::new();
    for payment in payments {
        let now_wanted = wanted.get(&payment.id).unwrap_or(&empty);
        if stored.get(&payment.id).unwrap_or(&empty) != now_wanted {
            rewritten.push(payment.id);
        }
        let split = splits.get(&payment.id);
        let portion = |part: fn(&PaymentSplit) -> Money| split.map_or(0, |s| part(s).minor());
        let (principal, interest, penalty) = (
            portion(|s| s.principal),
            portion(|s| s.interest),
            portion(|s| s.penalty),
        );
        if (principal, interest, penalty)
            != (
                payment.current_principal_minor,
                payment.current_interest_minor,
                payment.current_penalty_minor,
            )
        {
            payment::Entity::update(payment::ActiveModel {
                id: Set(payment.id),
                current_principal_minor: Set(principal),
                current_interest_minor: Set(interest),
                current_penalty_minor: Set(penalty),
                ..Default::default()
            })
            .exec_without_returning(connection)
            .await?;
        }
    }
    if rewritten.is_empty() {
        return Ok(());
    }
    for chunk in rewritten.chunks(crate::db::rows_per_statement(backend, 1)) {
        payment_allocation::Entity::delete_many()
            .filter(payment_allocation::Column::PaymentId.is_in(chunk.iter().copied()))
            .exec(connection)
            .await?;
    }
    let inserts: Vec<payment_allocation::ActiveModel> = rewritten
        .iter()
        .flat_map(|payment_id| {
            wanted.get(payment_id).into_iter().flatten().map(
                |(installment_id, principal, interest, penalty)| payment_allocation::ActiveModel {
                    payment_id: Set(*payment_id),
                    installment_id: Set(*installment_id),
                    principal_minor: Set(*principal),
                    interest_minor: Set(*interest),
                    penalty_minor: Set(*penalty),
                },
            )
        })
        .collect();
    for chunk in inserts.chunks(crate::db::rows_per_statement(backend, 5)) {
        payment_allocation::Entity::insert_many(chunk.iter().cloned())
            .exec_without_returning(connection)
            .await?;
    }
    Ok(())
}

/// The differences between what is stored of a loan and a fresh replay of
/// its history as of today (empty when they agree): a check of the books,
/// for tests and operators.
pub async fn verify_books(state: &AppState, loan_id: Uuid) -> anyhow::Result<Vec<String>> {
    let connection = &state.db.write;
    let loan = loan::Entity::find_by_id(loan_id)
        .one(connection)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no loan {loan_id}"))?;
    let rows = installments_of(connection, loan_id).await?;
    let history = History::load(connection, loan_id).await?;
    let today = state.today();
    let replayed = crate::ledger::replay::replay(
        &history.approved,
        &history.postings(),
        today,
        state.config.late_fee_rule(),
    )?;
    let mut differences = Vec::new();
    if replayed.installments.len() != rows.len() {
        differences.push(format!(
            "{} installments stored, {} replayed",
            rows.len(),
            replayed.installments.len()
        ));
        return Ok(differences);
    }
    let reconciliation = reconcile(&loan, &rows, &replayed, today, state.now())?;
    for (row, after) in rows.iter().zip(&reconciliation.rows) {
        let ledger_fields = |r: &installment::Model| {
            (
                r.penalty_minor,
                r.principal_paid_minor,
                r.interest_paid_minor,
                r.penalty_paid_minor,
                r.status,
            )
        };
        if ledger_fields(row) != ledger_fields(after) {
            differences.push(format!(
                "installment {}: stored {:?}, replayed {:?}",
                row.number,
                ledger_fields(row),
                ledger_fields(after)
            ));
        }
    }
    if reconciliation.loan_changed(&loan) {
        differences.push(format!(
            "loan: stored {:?}, replayed {:?}",
            (
                loan.status,
                loan.total_paid_minor,
                loan.penalties_minor,
                loan.penalties_paid_minor
            ),
            (
                reconciliation.loan.status,
                reconciliation.loan.total_paid_minor,
                reconciliation.loan.penalties_minor,
                reconciliation.loan.penalties_paid_minor
            )
        ));
    }
    let splits: HashMap<Uuid, &PaymentSplit> = replayed
        .payments
        .iter()
        .map(|applied| (applied.id, &applied.split))
        .collect();
    for payment in &history.payments {
        let replayed_portions = splits.get(&payment.id).map(|split| {
            (
                split.principal.minor(),
                split.interest.minor(),
                split.penalty.minor(),
            )
        });
        let stored = (
            payment.current_principal_minor,
            payment.current_interest_minor,
            payment.current_penalty_minor,
        );
        if replayed_portions != Some(stored) {
            differences.push(format!(
                "payment {}: stored portions {stored:?}, replayed {replayed_portions:?}",
                payment.id
            ));
        }
    }
    Ok(differences)
}

/// The loan replayed from its history as of `today`, with `added` (a
/// payment being recorded) and without `removed` (one being reversed).
pub fn replay_loan(
    history: &History,
    added: Option<Posting>,
    removed: Option<Uuid>,
    today: NaiveDate,
    rule: LateFeeRule,
) -> Result<LedgerState, crate::ledger::replay::LedgerError> {
    let mut postings = history.postings();
    postings.retain(|posting| Some(posting.id) != removed);
    postings.extend(added);
    crate::ledger::replay::replay(&history.approved, &postings, today, rule)
}

#[cfg(test)]
mod tests {
    //! The service's way of keeping rows — a payment valued today appended
    //! to the stored rows not fully paid, a backdated payment or a reversal
    //! replayed in full, the job storing fee days as they pass, reads
    //! computing today on top of whatever is stored — always shows what a
    //! fresh replay of the posted payments shows.

    use super::*;
    use crate::ledger::replay::replay;
    use crate::money::Percent;
    use proptest::prelude::*;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    fn at(day: NaiveDate) -> DateTime<Utc> {
        day.and_hms_opt(10, 0, 0).expect("time").and_utc()
    }

    fn loan_row(schedule: &[ApprovedInstallment], approved: NaiveDate) -> loan::Model {
        let payable: i64 = schedule
            .iter()
            .map(|row| (row.principal + row.interest).minor())
            .sum();
        loan::Model {
            id: Uuid::from_u128(1),
            user_id: Uuid::from_u128(2),
            status: LoanStatus::Approved,
            currency: "USD".to_owned(),
            principal_minor: schedule.iter().map(|row| row.principal.minor()).sum(),
            annual_interest_rate: "12".to_owned(),
            term_months: i32::try_from(schedule.len()).expect("term"),
            purpose: None,
            installment_minor: 0,
            total_payable_minor: payable,
            total_paid_minor: 0,
            penalties_minor: 0,
            penalties_paid_minor: 0,
            next_due_date: schedule.first().map(|row| row.due_date),
            first_due_date: schedule.first().map(|row| row.due_date),
            approved_by: None,
            approved_at: Some(at(approved)),
            rejected_by: None,
            rejected_at: None,
            rejection_reason: None,
            cancelled_at: None,
            paid_off_at: None,
            created_at: at(approved),
            updated_at: at(approved),
        }
    }

    fn installment_rows(
        schedule: &[ApprovedInstallment],
        approved: NaiveDate,
    ) -> Vec<installment::Model> {
        schedule
            .iter()
            .map(|row| installment::Model {
                id: Uuid::from_u128(1000 + u128::from(row.number)),
                loan_id: Uuid::from_u128(1),
                user_id: Uuid::from_u128(2),
                number: i32::try_from(row.number).expect("number"),
                due_date: row.due_date,
                principal_minor: row.principal.minor(),
                interest_minor: row.interest.minor(),
                penalty_minor: 0,
                principal_paid_minor: 0,
                interest_paid_minor: 0,
                penalty_paid_minor: 0,
                status: InstallmentStatus::Pending,
                overdue_since: None,
                penalty_applied_on: None,
                paid_at: None,
                created_at: at(approved),
                updated_at: at(approved),
            })
            .collect()
    }

    /// What the service stores: `rows` (all of the loan's) and `loan`.
    struct Stored {
        loan: loan::Model,
        rows: Vec<installment::Model>,
    }

    impl Stored {
        /// Writes a reconciliation of `subset` (indexes into `rows`).
        fn store(&mut self, subset: &[usize], reconciliation: Reconciliation) {
            for (position, row) in reconciliation.rows.into_iter().enumerate() {
                if let Some(index) = subset.get(position) {
                    self.rows[*index] = row;
                }
            }
            self.loan = reconciliation.loan;
        }

        fn everything(&self) -> Vec<usize> {
            (0..self.rows.len()).collect()
        }

        /// `GET /loans/{id}`: today computed over what is stored.
        fn read(&self, today: NaiveDate, rule: LateFeeRule) -> Reconciliation {
            let mut state = state_of(&self.rows);
            state.decide_fees_before(today, rule).expect("fees");
            reconcile(&self.loan, &self.rows, &state, today, at(today)).expect("transition")
        }
    }

    fn ledger_fields(row: &installment::Model) -> (i64, i64, i64, i64, InstallmentStatus) {
        (
            row.penalty_minor,
            row.principal_paid_minor,
            row.interest_paid_minor,
            row.penalty_paid_minor,
            row.status,
        )
    }

    #[derive(Clone, Debug)]
    enum Operation {
        /// Days pass; the daily job stores them, or nothing runs.
        Wait(u32, bool),
        PayToday(i64),
        PayBackdated(i64, u32),
        Reverse(usize),
    }

    proptest! {
        #[test]
        fn stored_rows_always_read_as_a_fresh_replay(
            amounts in prop::collection::vec((1i64..40_000, 0i64..3_000), 1..7),
            operations in prop::collection::vec(prop_oneof![
                ((1u32..40), any::<bool>()).prop_map(|(days, job)| Operation::Wait(days, job)),
                (1i64..30_000).prop_map(Operation::PayToday),
                ((1i64..30_000), (1u32..50)).prop_map(|(a, d)| Operation::PayBackdated(a, d)),
                (0usize..6).prop_map(Operation::Reverse),
            ], 1..25),
            percent in 0u32..8,
            grace in 0u32..4,
        ) {
            let rule = LateFeeRule {
                percent: Percent::parse(&percent.to_string()).expect("percent"),
                grace_days: grace,
            };
            let approved_on = date("2026-01-15");
            let schedule: Vec<ApprovedInstallment> = amounts
                .iter()
                .enumerate()
                .map(|(index, (principal, interest))| ApprovedInstallment {
                    number: u32::try_from(index + 1).expect("number"),
                    due_date: date("2026-02-15")
                        .checked_add_months(chrono::Months::new(u32::try_from(index).expect("index")))
                        .expect("date"),
                    principal: Money::from_minor(*principal),
                    interest: Money::from_minor(*interest),
                })
                .collect();
            let mut stored = Stored {
                loan: loan_row(&schedule, approved_on),
                rows: installment_rows(&schedule, approved_on),
            };
            let mut today = approved_on;
            let mut posted: Vec<Posting> = Vec::new();
            let mut sequence = 0u64;
            for operation in operations {
                if stored.loan.status == LoanStatus::Paid
                    && matches!(operation, Operation::PayToday(_) | Operation::PayBackdated(..))
                {
                    continue;
                }
                match operation {
                    Operation::Wait(days, job) => {
                        today = today + chrono::Days::new(u64::from(days));
                        if job {
                            let everything = stored.everything();
                            let reconciliation = stored.read(today, rule);
                            stored.store(&everything, reconciliation);
                        }
                    }
                    Operation::PayToday(amount) => {
                        sequence += 1;
                        let posting = Posting {
                            id: Uuid::from_u128(u128::from(sequence)),
                            amount: Money::from_minor(amount),
                            value_date: today,
                            sequence,
                        };
                        let unpaid: Vec<usize> = stored
                            .everything()
                            .into_iter()
                            .filter(|index| stored.rows[*index].status != InstallmentStatus::Paid)
                            .collect();
                        let rows: Vec<installment::Model> =
                            unpaid.iter().map(|index| stored.rows[*index].clone()).collect();
                        if let Ok(state) = state_of(&rows).append(&posting, today, rule) {
                            let reconciliation =
                                reconcile(&stored.loan, &rows, &state, today, at(today)).expect("transition");
                            stored.store(&unpaid, reconciliation);
                            posted.push(posting);
                        }
                    }
                    Operation::PayBackdated(amount, days) => {
                        sequence += 1;
                        let posting = Posting {
                            id: Uuid::from_u128(u128::from(sequence)),
                            amount: Money::from_minor(amount),
                            value_date: (today - chrono::Days::new(u64::from(days))).max(approved_on),
                            sequence,
                        };
                        let mut with = posted.clone();
                        with.push(posting);
                        if let Ok(state) = replay(&schedule, &with, today, rule) {
                            let everything = stored.everything();
                            let reconciliation =
                                reconcile(&stored.loan, &stored.rows, &state, today, at(today)).expect("transition");
                            stored.store(&everything, reconciliation);
                            posted = with;
                        }
                    }
                    Operation::Reverse(index) => {
                        if index < posted.len() {
                            let mut without = posted.clone();
                            without.remove(index);
                            if let Ok(state) = replay(&schedule, &without, today, rule) {
                                let everything = stored.everything();
                                let reconciliation =
                                    reconcile(&stored.loan, &stored.rows, &state, today, at(today)).expect("transition");
                                stored.store(&everything, reconciliation);
                                posted = without;
                            }
                        }
                    }
                }
                let fresh = replay(&schedule, &posted, today, rule).expect("replay");
                let expected = reconcile(&stored.loan, &stored.rows, &fresh, today, at(today)).expect("transition");
                let shown = stored.read(today, rule);
                for (seen, wanted) in shown.rows.iter().zip(&expected.rows) {
                    prop_assert_eq!(ledger_fields(seen), ledger_fields(wanted), "installment {}", seen.number);
                }
                prop_assert_eq!(
                    (shown.loan.status, shown.loan.total_paid_minor, shown.loan.penalties_minor, shown.loan.penalties_paid_minor, shown.loan.next_due_date),
                    (expected.loan.status, expected.loan.total_paid_minor, expected.loan.penalties_minor, expected.loan.penalties_paid_minor, expected.loan.next_due_date)
                );
                let total: i64 = posted.iter().map(|p| p.amount.minor()).sum();
                prop_assert_eq!(shown.loan.total_paid_minor, total);
            }
        }
    }
}
