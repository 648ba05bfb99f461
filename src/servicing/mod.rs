//! Keeping a loan's stored rows equal to what the ledger says of it.
//!
//! The installment rows and the loan's figures are a cache of
//! [`crate::ledger::replay`]. An operation computes the state the loan
//! must have ([`state_of`] + [`LedgerState::append`] for a payment valued
//! today, [`replay_loan`] for a backdated payment or a reversal), then
//! [`reconcile`] says which rows change and what follows from it (fees
//! charged or waived, installments newly overdue, installments a
//! prepayment rescheduled, added or removed, the loan's status and
//! figures), and [`store`] and [`announce`] write it in the caller's
//! transaction.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait,
};
use serde_json::json;
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{self, AuditAction, AuditEntry, EntityType};
use crate::db::batch::WriteBatch;
use crate::db::entities::{
    InstallmentStatus, LoanStatus, NotificationKind, PaymentStatus, approved_installment,
    installment, loan, payment, payment_allocation,
};
use crate::http::client::RequestMeta;
use crate::ledger::replay::{
    ApprovedInstallment, InstallmentState, LedgerState, LoanTerms, Posting,
};
use crate::ledger::{LateFeeRule, PaymentSplit};
use crate::money::{Money, Percent};
use crate::notifications::{self, NewNotification};

/// The ledger's view of stored installment rows (in number order): their
/// figures, and whether each one's fee has been decided. `terms` are needed
/// only for a prepayment, which must then be given every row.
pub fn state_of(rows: &[installment::Model], terms: Option<LoanTerms>) -> LedgerState {
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
        terms,
    }
}

/// The terms a prepayment on `loan` reschedules with: its rate, its
/// current regular amount, and the day of month of its approved schedule.
pub async fn current_terms(
    connection: &impl ConnectionTrait,
    loan: &loan::Model,
) -> anyhow::Result<LoanTerms> {
    let (approved, _) = approved_schedule(connection, loan.id).await?;
    Ok(LoanTerms {
        installment_amount: Money::from_minor(loan.installment_minor),
        ..LoanTerms::approved(&approved, Percent::parse(&loan.annual_interest_rate)?)
    })
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
    /// One row per installment of the state, in its order, as it must now
    /// be stored: a stored row of the same number, or a new one.
    pub rows: Vec<installment::Model>,
    /// Indexes into `rows` of stored rows that change.
    pub changed: Vec<usize>,
    /// Indexes into `rows` of rows to insert (a reversed prepayment brings
    /// back installments a shorter schedule had removed).
    pub inserted: Vec<usize>,
    /// Stored rows the state no longer has (a prepayment shortened the
    /// schedule).
    pub removed: Vec<Uuid>,
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
            after.installment_minor,
            after.total_payable_minor,
            after.principal_paid_minor,
            after.interest_paid_minor,
        ) != (
            before.status,
            before.total_paid_minor,
            before.penalties_minor,
            before.penalties_paid_minor,
            before.next_due_date,
            before.paid_off_at,
            before.installment_minor,
            before.total_payable_minor,
            before.principal_paid_minor,
            before.interest_paid_minor,
        )
    }

    pub fn outstanding(&self) -> Money {
        self.loan.totals().outstanding()
    }
}

/// The rows and loan figures `state` gives stored `rows` of `loan`, as of
/// `today`. `rows` are either every installment of the loan or (for an
/// ordinary payment valued today) every one not fully paid: the figures of
/// the loan move by the differences, so both give the same loan. Rows and
/// state installments are matched by number; a number only the state has
/// is a new row, one only the rows have is removed.
///
/// Principal a prepayment paid is owed by no installment: it is what the
/// rows' principal shrank by, and counts as paid. `totalPayable` is the
/// loan's principal plus the interest of the current schedule.
pub fn reconcile(
    loan: &loan::Model,
    rows: &[installment::Model],
    state: &LedgerState,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> anyhow::Result<Reconciliation> {
    reconcile_with_ids(loan, rows, state, today, now, &HashMap::new())
}

/// [`reconcile`], where an installment the state brings back takes the id
/// `installment_ids` gives its number (the id it had; see
/// [`History::installment_ids`]).
pub fn reconcile_with_ids(
    loan: &loan::Model,
    rows: &[installment::Model],
    state: &LedgerState,
    today: NaiveDate,
    now: DateTime<Utc>,
    installment_ids: &HashMap<u32, Uuid>,
) -> anyhow::Result<Reconciliation> {
    let stored: HashMap<u32, &installment::Model> = rows
        .iter()
        .map(|row| (u32::try_from(row.number).unwrap_or_default(), row))
        .collect();
    let kept: std::collections::HashSet<u32> =
        state.installments.iter().map(|row| row.number).collect();
    let removed_rows: Vec<&installment::Model> = rows
        .iter()
        .filter(|row| !kept.contains(&u32::try_from(row.number).unwrap_or_default()))
        .collect();
    let mut after_rows = Vec::with_capacity(state.installments.len());
    let mut changed = Vec::new();
    let mut inserted = Vec::new();
    let mut fees = Vec::new();
    let mut newly_overdue = Vec::new();
    let mut paid_delta = Money::ZERO;
    let mut penalties_delta = Money::ZERO;
    let mut penalties_paid_delta = Money::ZERO;
    let mut principal_delta = Money::ZERO;
    let mut interest_delta = Money::ZERO;
    let mut principal_paid_delta = Money::ZERO;
    let mut interest_paid_delta = Money::ZERO;
    for gone in &removed_rows {
        let before = gone.figures();
        // A fee goes with its installment: waived.
        if before.due.penalty.is_positive() {
            fees.push(FeeChange {
                installment_id: gone.id,
                number: gone.number,
                due_date: gone.due_date,
                previous: before.due.penalty,
                penalty: Money::ZERO,
                owed: Money::ZERO,
            });
        }
        paid_delta -= before.paid.total();
        principal_paid_delta -= before.paid.principal;
        interest_paid_delta -= before.paid.interest;
        penalties_delta -= before.due.penalty;
        penalties_paid_delta -= before.paid.penalty;
        principal_delta -= before.due.principal;
        interest_delta -= before.due.interest;
    }
    let mut any_overdue = false;
    let mut next_due_date: Option<NaiveDate> = None;
    for (index, after) in state.installments.iter().enumerate() {
        let existing = stored.get(&after.number).copied();
        let row = existing.cloned().unwrap_or_else(|| {
            let id = installment_ids
                .get(&after.number)
                .copied()
                .unwrap_or_else(Uuid::now_v7);
            new_row(loan, after, id, now)
        });
        let before = row.figures();
        let status = after.status(today);
        let settled = after.is_settled();
        let mut next = row.clone();
        next.due_date = after.due_date;
        next.principal_minor = after.principal.minor();
        next.interest_minor = after.interest.minor();
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
        if existing.is_some() {
            paid_delta += after.paid.total() - before.paid.total();
            principal_paid_delta += after.paid.principal - before.paid.principal;
            interest_paid_delta += after.paid.interest - before.paid.interest;
            penalties_delta += after.penalty - before.due.penalty;
            penalties_paid_delta += after.paid.penalty - before.paid.penalty;
            principal_delta += after.principal - before.due.principal;
            interest_delta += after.interest - before.due.interest;
        } else {
            paid_delta += after.paid.total();
            principal_paid_delta += after.paid.principal;
            interest_paid_delta += after.paid.interest;
            penalties_delta += after.penalty;
            penalties_paid_delta += after.paid.penalty;
            principal_delta += after.principal;
            interest_delta += after.interest;
        }
        if after.penalty != before.due.penalty {
            fees.push(FeeChange {
                installment_id: row.id,
                number: row.number,
                due_date: after.due_date,
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
            next_due_date =
                Some(next_due_date.map_or(after.due_date, |day| day.min(after.due_date)));
        }
        if existing.is_none() {
            inserted.push(index);
        } else if next != row {
            changed.push(index);
        }
        after_rows.push(next);
    }
    // What the schedule's principal shrank by was prepaid.
    let prepaid_delta = Money::ZERO - principal_delta;
    let mut next_loan = loan.clone();
    next_loan.total_paid_minor = (loan.totals().total_paid + paid_delta + prepaid_delta).minor();
    next_loan.principal_paid_minor =
        (Money::from_minor(loan.principal_paid_minor) + principal_paid_delta + prepaid_delta)
            .minor();
    next_loan.interest_paid_minor =
        (Money::from_minor(loan.interest_paid_minor) + interest_paid_delta).minor();
    next_loan.penalties_minor = (loan.totals().penalties + penalties_delta).minor();
    next_loan.penalties_paid_minor = (loan.totals().penalties_paid + penalties_paid_delta).minor();
    next_loan.total_payable_minor =
        (Money::from_minor(loan.total_payable_minor) + interest_delta).minor();
    if let Some(terms) = state.terms {
        next_loan.installment_minor = terms.installment_amount.minor();
    }
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
        inserted,
        removed: removed_rows.iter().map(|row| row.id).collect(),
        fees,
        newly_overdue,
        loan: next_loan,
        previous_status: loan.status,
        today,
    })
}

/// A row for an installment no stored row holds.
fn new_row(
    loan: &loan::Model,
    state: &InstallmentState,
    id: Uuid,
    now: DateTime<Utc>,
) -> installment::Model {
    installment::Model {
        id,
        loan_id: loan.id,
        user_id: loan.user_id,
        number: i32::try_from(state.number).unwrap_or(i32::MAX),
        due_date: state.due_date,
        principal_minor: state.principal.minor(),
        interest_minor: state.interest.minor(),
        penalty_minor: 0,
        principal_paid_minor: 0,
        interest_paid_minor: 0,
        penalty_paid_minor: 0,
        status: InstallmentStatus::Pending,
        overdue_since: None,
        penalty_applied_on: None,
        paid_at: None,
        created_at: now,
        updated_at: now,
    }
}

/// Adds to `batch` the writes of the rows and the loan a reconciliation
/// changes. Removing a row removes its allocations too (the replay's
/// caller rewrites those of the payments concerned).
pub fn store(
    batch: &mut WriteBatch,
    before: &loan::Model,
    reconciliation: &Reconciliation,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    if !reconciliation.removed.is_empty() {
        batch.delete(
            payment_allocation::Entity::delete_many()
                .filter(
                    payment_allocation::Column::InstallmentId.is_in(reconciliation.removed.clone()),
                )
                .into_query(),
        );
        batch.delete(
            installment::Entity::delete_many()
                .filter(installment::Column::Id.is_in(reconciliation.removed.clone()))
                .into_query(),
        );
    }
    for row in reconciliation
        .changed
        .iter()
        .filter_map(|index| reconciliation.rows.get(*index))
    {
        batch.update(
            installment::Entity::update(installment::ActiveModel {
                id: Set(row.id),
                due_date: Set(row.due_date),
                principal_minor: Set(row.principal_minor),
                interest_minor: Set(row.interest_minor),
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
            .validate()?
            .into_query(),
        );
    }
    let inserts: Vec<installment::ActiveModel> = reconciliation
        .inserted
        .iter()
        .filter_map(|index| reconciliation.rows.get(*index))
        .map(|row| installment::ActiveModel::from(row.clone()))
        .collect();
    for chunk in inserts.chunks(crate::db::rows_per_statement(
        batch.backend(),
        INSTALLMENT_COLUMNS,
    )) {
        batch.insert(installment::Entity::insert_many(chunk.to_vec()).into_query());
    }
    if reconciliation.loan_changed(before) {
        let loan = &reconciliation.loan;
        batch.update(
            loan::Entity::update(loan::ActiveModel {
                id: Set(loan.id),
                status: Set(loan.status),
                total_paid_minor: Set(loan.total_paid_minor),
                penalties_minor: Set(loan.penalties_minor),
                penalties_paid_minor: Set(loan.penalties_paid_minor),
                installment_minor: Set(loan.installment_minor),
                total_payable_minor: Set(loan.total_payable_minor),
                principal_paid_minor: Set(loan.principal_paid_minor),
                interest_paid_minor: Set(loan.interest_paid_minor),
                next_due_date: Set(loan.next_due_date),
                paid_off_at: Set(loan.paid_off_at),
                updated_at: Set(now),
                ..Default::default()
            })
            .validate()?
            .into_query(),
        );
    }
    Ok(())
}

/// The columns of an installment row.
const INSTALLMENT_COLUMNS: usize = 17;

/// Stored `rows` of `loan` brought up to `today` as the daily job would
/// bring them (fees whose day has passed, installments overdue, the loan's
/// status): what an operation does first, so that the notices and audit
/// entries of that day go out even when the operation then pays what was
/// late. Nothing changes when the rows are already up to date.
pub fn up_to_date(
    loan: &loan::Model,
    rows: &[installment::Model],
    today: NaiveDate,
    now: DateTime<Utc>,
    rule: LateFeeRule,
) -> anyhow::Result<Reconciliation> {
    let mut state = state_of(rows, None);
    state.decide_fees_before(today, rule)?;
    reconcile(loan, rows, &state, today, now)
}

/// Writes and announces a reconciliation, if it changes anything.
pub async fn write_changes(
    connection: &impl ConnectionTrait,
    before: &loan::Model,
    reconciliation: &Reconciliation,
    actor: Option<Uuid>,
    meta: Option<&RequestMeta>,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    let changes = !reconciliation.changed.is_empty()
        || !reconciliation.inserted.is_empty()
        || !reconciliation.removed.is_empty()
        || reconciliation.loan_changed(before);
    if changes {
        let mut batch = WriteBatch::for_connection(connection);
        store(&mut batch, before, reconciliation, now)?;
        announce(&mut batch, reconciliation, actor, meta, now);
        batch.execute(connection).await?;
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

/// Adds to `batch` what a reconciliation tells the borrower and the audit log:
/// installments newly overdue, fees applied or waived, the loan becoming
/// OVERDUE. (A loan paid off is announced by the payment that did it.)
pub fn announce(
    batch: &mut WriteBatch,
    reconciliation: &Reconciliation,
    actor: Option<Uuid>,
    meta: Option<&RequestMeta>,
    now: DateTime<Utc>,
) {
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
    notifications::push_many_once(batch, notices, now);
    audit::push_many(batch, entries, meta, now);
}

/// What a replay starts from: the schedule and terms as approved and the
/// posted payments, in recording order.
pub struct History {
    pub approved: Vec<ApprovedInstallment>,
    pub terms: LoanTerms,
    pub payments: Vec<payment::Model>,
    /// The row id of each approved installment, by number: an installment
    /// a replay brings back (a reversed `REDUCE_TERM` prepayment) keeps it.
    pub installment_ids: HashMap<u32, Uuid>,
}

/// The schedule `loan_id` was approved with, and its rows' ids by number.
async fn approved_schedule(
    connection: &impl ConnectionTrait,
    loan_id: Uuid,
) -> Result<(Vec<ApprovedInstallment>, HashMap<u32, Uuid>), sea_orm::DbErr> {
    let rows = approved_installment::Entity::find()
        .filter(approved_installment::Column::LoanId.eq(loan_id))
        .order_by_asc(approved_installment::Column::Number)
        .all(connection)
        .await?;
    let ids = rows
        .iter()
        .filter_map(|row| Some((u32::try_from(row.number).ok()?, row.installment_id?)))
        .collect();
    let schedule = rows
        .into_iter()
        .map(|row| ApprovedInstallment {
            number: u32::try_from(row.number).unwrap_or_default(),
            due_date: row.due_date,
            principal: Money::from_minor(row.principal_minor),
            interest: Money::from_minor(row.interest_minor),
        })
        .collect();
    Ok((schedule, ids))
}

impl History {
    pub async fn load(
        connection: &impl ConnectionTrait,
        loan: &loan::Model,
    ) -> anyhow::Result<History> {
        let (approved, installment_ids) = approved_schedule(connection, loan.id).await?;
        let terms = LoanTerms::approved(&approved, Percent::parse(&loan.annual_interest_rate)?);
        let payments = payment::Entity::find()
            .filter(payment::Column::LoanId.eq(loan.id))
            .filter(payment::Column::Status.eq(PaymentStatus::Posted))
            .order_by_asc(payment::Column::CreatedAt)
            .order_by_asc(payment::Column::Id)
            .all(connection)
            .await?;
        Ok(History {
            approved,
            terms,
            payments,
            installment_ids,
        })
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
                excess: payment.excess,
            })
            .collect()
    }

    /// The posted settlement, if any: the loan is closed by it.
    pub fn settlement(&self) -> Option<&payment::Model> {
        self.payments
            .iter()
            .find(|payment| payment.excess == crate::enums::ExcessPolicy::Settlement)
    }
}

/// The loan, locked for the rest of the transaction, with its
/// installments in number order; `None` if there is no such loan.
///
/// Two statements, on purpose. One `SELECT … JOIN … FOR UPDATE OF loans`
/// would save a round trip, but on PostgreSQL it reads the installments in
/// the snapshot taken before it waited for the lock: a payment committed
/// meanwhile would be missing from them (found by the concurrency tests).
/// The second statement takes a snapshot after the lock is held.
pub async fn lock_with_installments(
    transaction: &DatabaseTransaction,
    loan_id: Uuid,
) -> Result<Option<(loan::Model, Vec<installment::Model>)>, sea_orm::DbErr> {
    let Some(loan) = loan::Entity::find_by_id(loan_id)
        .lock_exclusive()
        .one(transaction)
        .await?
    else {
        return Ok(None);
    };
    let rows = installments_of(transaction, loan_id).await?;
    Ok(Some((loan, rows)))
}

/// The loans with these ids, locked for the rest of the transaction in id
/// order: every operation that locks several loans takes them in this one
/// order, so that no two can deadlock.
pub async fn lock_loans(
    transaction: &DatabaseTransaction,
    loan_ids: &[Uuid],
) -> Result<Vec<loan::Model>, sea_orm::DbErr> {
    loan::Entity::find()
        .filter(loan::Column::Id.is_in(loan_ids.iter().copied()))
        .order_by_asc(loan::Column::Id)
        .lock_exclusive()
        .all(transaction)
        .await
}

/// Loans locked for the rest of the transaction, in id order (as the
/// overdue job locks them, so that neither can deadlock the other), each
/// with its installments not fully paid, in number order: all that
/// payments valued today can touch. A loan that does not exist is
/// missing. Two statements, for the reason [`lock_with_installments`]
/// gives.
pub async fn lock_many_with_unpaid(
    transaction: &DatabaseTransaction,
    loan_ids: &[Uuid],
) -> Result<BTreeMap<Uuid, (loan::Model, Vec<installment::Model>)>, sea_orm::DbErr> {
    let loans = lock_loans(transaction, loan_ids).await?;
    if loans.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut locked: BTreeMap<Uuid, (loan::Model, Vec<installment::Model>)> = loans
        .into_iter()
        .map(|loan| (loan.id, (loan, Vec::new())))
        .collect();
    // A bound value, unlike the overdue filter: here the plan must be the
    // (loan, number) key, not a partial index over every loan.
    let rows = installment::Entity::find()
        .filter(installment::Column::LoanId.is_in(locked.keys().copied()))
        .filter(installment::Column::Status.ne(InstallmentStatus::Paid))
        .order_by_asc(installment::Column::LoanId)
        .order_by_asc(installment::Column::Number)
        .all(transaction)
        .await?;
    for row in rows {
        if let Some((_, of_loan)) = locked.get_mut(&row.loan_id) {
            of_loan.push(row);
        }
    }
    Ok(locked)
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
/// differ from what is stored. `rows` are the reconciliation's rows (one
/// per installment of `state`). `payments` are the loan's payments whose
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
    let history = History::load(connection, &loan).await?;
    let today = state.today();
    let replayed = crate::ledger::replay::replay(
        &history.approved,
        history.terms,
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
                r.number,
                r.due_date,
                r.principal_minor,
                r.interest_minor,
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
                loan.penalties_paid_minor,
                loan.installment_minor,
                loan.total_payable_minor,
                loan.principal_paid_minor,
                loan.interest_paid_minor
            ),
            (
                reconciliation.loan.status,
                reconciliation.loan.total_paid_minor,
                reconciliation.loan.penalties_minor,
                reconciliation.loan.penalties_paid_minor,
                reconciliation.loan.installment_minor,
                reconciliation.loan.total_payable_minor,
                reconciliation.loan.principal_paid_minor,
                reconciliation.loan.interest_paid_minor
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
    crate::ledger::replay::replay(&history.approved, history.terms, &postings, today, rule)
}

#[cfg(test)]
mod tests {
    //! The service's way of keeping rows — a payment valued today appended
    //! to the stored rows not fully paid, a backdated payment or a reversal
    //! replayed in full, the job storing fee days as they pass, reads
    //! computing today on top of whatever is stored — always shows what a
    //! fresh replay of the posted payments shows.

    use super::*;
    use crate::enums::ExcessPolicy;
    use crate::ledger::replay::fixtures::{approved_loan, policies};
    use crate::ledger::replay::replay;
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
            principal_paid_minor: 0,
            interest_paid_minor: 0,
        }
    }

    fn installment_rows(
        schedule: &[ApprovedInstallment],
        loan: &loan::Model,
        approved: NaiveDate,
    ) -> Vec<installment::Model> {
        LedgerState::approved(schedule, LoanTerms::approved(schedule, Percent::zero()))
            .installments
            .iter()
            .map(|row| new_row(loan, row, Uuid::now_v7(), at(approved)))
            .collect()
    }

    /// What the service stores: `rows` (all of the loan's) and `loan`.
    struct Stored {
        loan: loan::Model,
        rows: Vec<installment::Model>,
    }

    impl Stored {
        /// Writes a reconciliation, as `store` does.
        fn store(&mut self, reconciliation: Reconciliation) {
            self.rows
                .retain(|row| !reconciliation.removed.contains(&row.id));
            for row in reconciliation.rows {
                match self.rows.iter_mut().find(|stored| stored.id == row.id) {
                    Some(stored) => *stored = row,
                    None => self.rows.push(row),
                }
            }
            self.rows.sort_by_key(|row| row.number);
            self.loan = reconciliation.loan;
        }

        /// `GET /loans/{id}`: today computed over what is stored.
        fn read(&self, today: NaiveDate, rule: LateFeeRule) -> Reconciliation {
            let mut state = state_of(&self.rows, None);
            state.decide_fees_before(today, rule).expect("fees");
            reconcile(&self.loan, &self.rows, &state, today, at(today)).expect("transition")
        }

        /// What a prepayment or a settlement starts from: every row, and
        /// the terms with the loan's current regular amount.
        fn full_state(&self, approved: LoanTerms) -> LedgerState {
            state_of(
                &self.rows,
                Some(LoanTerms {
                    installment_amount: Money::from_minor(self.loan.installment_minor),
                    ..approved
                }),
            )
        }
    }

    fn ledger_fields(
        row: &installment::Model,
    ) -> (
        i32,
        NaiveDate,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        InstallmentStatus,
    ) {
        (
            row.number,
            row.due_date,
            row.principal_minor,
            row.interest_minor,
            row.penalty_minor,
            row.principal_paid_minor,
            row.interest_paid_minor,
            row.penalty_paid_minor,
            row.status,
        )
    }

    type LoanFields = (
        LoanStatus,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        Option<NaiveDate>,
    );

    fn loan_fields(loan: &loan::Model) -> LoanFields {
        (
            loan.status,
            loan.total_paid_minor,
            loan.penalties_minor,
            loan.penalties_paid_minor,
            loan.installment_minor,
            loan.total_payable_minor,
            loan.principal_paid_minor,
            loan.interest_paid_minor,
            loan.next_due_date,
        )
    }

    #[derive(Clone, Debug)]
    enum Operation {
        /// Days pass; the daily job stores them, or nothing runs.
        Wait(u32, bool),
        PayToday(i64, ExcessPolicy),
        PayBackdated(i64, u32, ExcessPolicy),
        SettleToday,
        Reverse(usize),
    }

    proptest! {
        #[test]
        fn stored_rows_always_read_as_a_fresh_replay(
            (principal, rate, term) in (10_000i64..200_000, prop_oneof![Just(0u32), 1u32..25], 1u32..7),
            operations in prop::collection::vec(prop_oneof![
                ((1u32..40), any::<bool>()).prop_map(|(days, job)| Operation::Wait(days, job)),
                ((1i64..60_000), policies()).prop_map(|(a, p)| Operation::PayToday(a, p)),
                ((1i64..60_000), (1u32..50), policies()).prop_map(|(a, d, p)| Operation::PayBackdated(a, d, p)),
                Just(Operation::SettleToday),
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
            let rate = Percent::parse(&rate.to_string()).expect("rate");
            let (schedule, terms) = approved_loan(principal, rate, term);
            let loan = loan::Model {
                installment_minor: terms.installment_amount.minor(),
                ..loan_row(&schedule, approved_on)
            };
            let mut stored = Stored {
                rows: installment_rows(&schedule, &loan, approved_on),
                loan,
            };
            let mut today = approved_on;
            let mut posted: Vec<Posting> = Vec::new();
            let mut sequence = 0u64;
            for operation in operations {
                if stored.loan.status == LoanStatus::Paid && !matches!(operation, Operation::Wait(..) | Operation::Reverse(_)) {
                    continue;
                }
                let mut next_posting = |amount: i64, value_date: NaiveDate, excess: ExcessPolicy| {
                    sequence += 1;
                    Posting {
                        id: Uuid::from_u128(u128::from(sequence)),
                        amount: Money::from_minor(amount),
                        value_date,
                        sequence,
                        excess,
                    }
                };
                match operation {
                    Operation::Wait(days, job) => {
                        today = today + chrono::Days::new(u64::from(days));
                        if job {
                            let reconciliation = stored.read(today, rule);
                            stored.store(reconciliation);
                        }
                    }
                    Operation::PayToday(amount, excess) => {
                        let posting = next_posting(amount, today, excess);
                        // An ordinary payment takes the rows not fully
                        // paid; a prepayment every row and the terms.
                        let (rows, state) = if excess == ExcessPolicy::NextInstallments {
                            let rows: Vec<installment::Model> = stored
                                .rows
                                .iter()
                                .filter(|row| row.status != InstallmentStatus::Paid)
                                .cloned()
                                .collect();
                            let state = state_of(&rows, None);
                            (rows, state)
                        } else {
                            (stored.rows.clone(), stored.full_state(terms))
                        };
                        if let Ok(state) = state.append(&posting, today, rule) {
                            let reconciliation =
                                reconcile(&stored.loan, &rows, &state, today, at(today)).expect("transition");
                            stored.store(reconciliation);
                            posted.push(posting);
                        }
                    }
                    Operation::SettleToday => {
                        let mut state = stored.full_state(terms);
                        state.decide_fees_before(today, rule).expect("fees");
                        let quote = crate::ledger::payoff::payoff_quote(&state, today).expect("quote");
                        let posting = next_posting(quote.total.minor(), today, ExcessPolicy::Settlement);
                        if let Ok(state) = state.append(&posting, today, rule) {
                            let reconciliation =
                                reconcile(&stored.loan, &stored.rows, &state, today, at(today)).expect("transition");
                            stored.store(reconciliation);
                            posted.push(posting);
                        }
                    }
                    Operation::PayBackdated(amount, days, excess) => {
                        let value_date = (today - chrono::Days::new(u64::from(days))).max(approved_on);
                        let posting = next_posting(amount, value_date, excess);
                        let mut with = posted.clone();
                        with.push(posting);
                        if let Ok(state) = replay(&schedule, terms, &with, today, rule) {
                            let reconciliation =
                                reconcile(&stored.loan, &stored.rows, &state, today, at(today)).expect("transition");
                            stored.store(reconciliation);
                            posted = with;
                        }
                    }
                    Operation::Reverse(index) => {
                        if index < posted.len() {
                            let mut without = posted.clone();
                            without.remove(index);
                            if let Ok(state) = replay(&schedule, terms, &without, today, rule) {
                                let reconciliation =
                                    reconcile(&stored.loan, &stored.rows, &state, today, at(today)).expect("transition");
                                stored.store(reconciliation);
                                posted = without;
                            }
                        }
                    }
                }
                let fresh = replay(&schedule, terms, &posted, today, rule).expect("replay");
                let expected = reconcile(&stored.loan, &stored.rows, &fresh, today, at(today)).expect("transition");
                let shown = stored.read(today, rule);
                let seen: Vec<_> = shown.rows.iter().map(ledger_fields).collect();
                let wanted: Vec<_> = expected.rows.iter().map(ledger_fields).collect();
                prop_assert_eq!(seen, wanted);
                prop_assert_eq!(loan_fields(&shown.loan), loan_fields(&expected.loan));
                let total: i64 = posted.iter().map(|p| p.amount.minor()).sum();
                prop_assert_eq!(shown.loan.total_paid_minor, total);
                // outstanding = totalPayable + penalties − totalPaid, and
                // totalPayable = principal + Σ interest of the schedule.
                let interest: i64 = shown.rows.iter().map(|row| row.interest_minor).sum();
                prop_assert_eq!(shown.loan.total_payable_minor, principal + interest);
                let owed: Money = shown.rows.iter().map(|row| row.figures().still_owed()).sum();
                prop_assert_eq!(shown.outstanding(), owed);
                // What the portfolio report sums: principal paid is what no
                // installment owes any more; interest paid, what they record.
                let unpaid_principal: i64 = shown
                    .rows
                    .iter()
                    .map(|row| row.principal_minor - row.principal_paid_minor)
                    .sum();
                prop_assert_eq!(shown.loan.principal_paid_minor, principal - unpaid_principal);
                let interest_paid: i64 = shown.rows.iter().map(|row| row.interest_paid_minor).sum();
                prop_assert_eq!(shown.loan.interest_paid_minor, interest_paid);
                prop_assert_eq!(
                    shown.loan.principal_paid_minor + shown.loan.interest_paid_minor + shown.loan.penalties_paid_minor,
                    total
                );
            }
        }
    }
}
