//! Writing what a change to a loan did: its installment rows, the loan's
//! figures, its payments and their allocations. Every write goes into the
//! caller's [`WriteBatch`] (one round trip, in the loan's transaction),
//! except the daily job's, which writes many loans with a few set-based
//! statements ([`write_brought_up_to_date`]).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{CaseStatement, Expr};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryTrait,
};
use uuid::Uuid;

use crate::db::batch::WriteBatch;
use crate::db::entities::{installment, loan, payment, payment_allocation};
use crate::ledger::PaymentSplit;

use super::rows::loan_changed;

/// The rows of one loan a change leaves, net of everything it did: what
/// to delete, update and insert, and the loan row before and after.
#[derive(Debug, Clone)]
pub struct RowWrites {
    pub removed: Vec<Uuid>,
    pub changed: Vec<installment::Model>,
    pub inserted: Vec<installment::Model>,
    pub loan_before: loan::Model,
    pub loan_after: loan::Model,
}

/// Adds the writes of `rows` to `batch`. Removing an installment removes
/// its allocations too (the payments concerned are rewritten beside it).
pub fn push_rows(
    batch: &mut WriteBatch,
    rows: &RowWrites,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if !rows.removed.is_empty() {
        batch.delete(
            payment_allocation::Entity::delete_many()
                .filter(payment_allocation::Column::InstallmentId.is_in(rows.removed.clone()))
                .into_query(),
        );
        batch.delete(
            installment::Entity::delete_many()
                .filter(installment::Column::Id.is_in(rows.removed.clone()))
                .into_query(),
        );
    }
    for row in &rows.changed {
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
    let inserts: Vec<installment::ActiveModel> = rows
        .inserted
        .iter()
        .map(|row| installment::ActiveModel::from(row.clone()))
        .collect();
    for chunk in inserts.chunks(crate::db::rows_per_statement(
        batch.backend(),
        INSTALLMENT_COLUMNS,
    )) {
        batch.insert(installment::Entity::insert_many(chunk.to_vec()).into_query());
    }
    push_loan(batch, &rows.loan_before, &rows.loan_after, now)
}

/// The columns of an installment row.
const INSTALLMENT_COLUMNS: usize = 17;

/// The update of the loan row, if its figures or terms changed.
fn push_loan(
    batch: &mut WriteBatch,
    before: &loan::Model,
    after: &loan::Model,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let terms_changed = (
        after.annual_interest_rate.as_str(),
        after.first_due_date,
        after.approved_by,
        after.approved_at,
    ) != (
        before.annual_interest_rate.as_str(),
        before.first_due_date,
        before.approved_by,
        before.approved_at,
    );
    let written_off = after.written_off_at != before.written_off_at;
    if !loan_changed(before, after) && !terms_changed && !written_off {
        return Ok(());
    }
    let mut update = loan::ActiveModel {
        id: Set(after.id),
        status: Set(after.status),
        total_paid_minor: Set(after.total_paid_minor),
        penalties_minor: Set(after.penalties_minor),
        penalties_paid_minor: Set(after.penalties_paid_minor),
        installment_minor: Set(after.installment_minor),
        total_payable_minor: Set(after.total_payable_minor),
        principal_paid_minor: Set(after.principal_paid_minor),
        interest_paid_minor: Set(after.interest_paid_minor),
        next_due_date: Set(after.next_due_date),
        paid_off_at: Set(after.paid_off_at),
        updated_at: Set(now),
        ..Default::default()
    };
    if written_off {
        update.written_off_at = Set(after.written_off_at);
        update.principal_written_off_minor = Set(after.principal_written_off_minor);
        update.paid_before_write_off_minor = Set(after.paid_before_write_off_minor);
        update.interest_paid_before_write_off_minor =
            Set(after.interest_paid_before_write_off_minor);
        update.penalties_paid_before_write_off_minor =
            Set(after.penalties_paid_before_write_off_minor);
    }
    if terms_changed {
        update.annual_interest_rate = Set(after.annual_interest_rate.clone());
        update.first_due_date = Set(after.first_due_date);
        update.approved_by = Set(after.approved_by);
        update.approved_at = Set(after.approved_at);
    }
    batch.update(loan::Entity::update(update).validate()?.into_query());
    Ok(())
}

/// The allocation rows of a payment's `split`, whose indexes point into
/// `rows` (the installments it was allocated over): the one way allocation
/// rows are made.
pub fn allocation_rows(
    payment_id: Uuid,
    split: &PaymentSplit,
    rows: &[installment::Model],
) -> Vec<payment_allocation::ActiveModel> {
    split
        .allocations
        .iter()
        .filter_map(|allocation| {
            let installment = rows.get(allocation.index)?;
            Some(payment_allocation::ActiveModel {
                payment_id: Set(payment_id),
                installment_id: Set(installment.id),
                principal_minor: Set(allocation.principal.minor()),
                interest_minor: Set(allocation.interest.minor()),
                penalty_minor: Set(allocation.penalty.minor()),
            })
        })
        .collect()
}

/// Adds inserts of `allocations` to `batch` (none when empty: a prepayment
/// valued on a day nothing is due pays no installment).
pub fn push_allocations(batch: &mut WriteBatch, allocations: Vec<payment_allocation::ActiveModel>) {
    for chunk in allocations.chunks(crate::db::rows_per_statement(batch.backend(), 5)) {
        batch.insert(payment_allocation::Entity::insert_many(chunk.to_vec()).into_query());
    }
}

/// Adds to `batch` the removal of every allocation of `payment_ids`, to be
/// written again (a replay moved them).
pub fn push_allocations_removed(batch: &mut WriteBatch, payment_ids: &[Uuid]) {
    for chunk in payment_ids.chunks(crate::db::rows_per_statement(batch.backend(), 1)) {
        batch.delete(
            payment_allocation::Entity::delete_many()
                .filter(payment_allocation::Column::PaymentId.is_in(chunk.iter().copied()))
                .into_query(),
        );
    }
}

/// A payment's allocations in a comparable form: (installment, principal,
/// interest, penalty), sorted.
pub type AllocationKey = Vec<(Uuid, i64, i64, i64)>;

/// The stored allocations of `payment_ids`, by payment. A loan may have
/// thousands of payments: every statement stays within what the database
/// binds.
pub async fn stored_allocations(
    connection: &impl ConnectionTrait,
    payment_ids: &[Uuid],
) -> Result<BTreeMap<Uuid, AllocationKey>, DbErr> {
    let backend = connection.get_database_backend();
    let mut stored: BTreeMap<Uuid, AllocationKey> = BTreeMap::new();
    for chunk in payment_ids.chunks(crate::db::rows_per_statement(backend, 1)) {
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
    Ok(stored)
}

/// The comparable form of `split`'s allocations over `rows`.
pub fn allocation_key(split: &PaymentSplit, rows: &[installment::Model]) -> AllocationKey {
    let mut key: AllocationKey = split
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
    key.sort_unstable();
    key
}

/// The update of a payment row's current portions (and, for a reversal,
/// its status and who reversed it), as one write.
pub fn push_payment_update(
    batch: &mut WriteBatch,
    update: payment::ActiveModel,
) -> Result<(), DbErr> {
    batch.update(payment::Entity::update(update).validate()?.into_query());
    Ok(())
}

/// The daily job's writes for many loans brought up to a day: per table,
/// one statement per chunk that sets each changed column by a `CASE` on the
/// row's id. Bringing a loan up to date only marks installments overdue
/// and decides their fees, so only those columns are written; a row whose
/// other figures differ is refused (it would be a bug, and the job retries
/// loan by loan, leaving that one for the next run).
pub async fn write_brought_up_to_date(
    connection: &impl ConnectionTrait,
    changes: &[RowWrites],
    now: DateTime<Utc>,
) -> Result<(), BroughtUpToDateError> {
    let rows: Vec<&installment::Model> = changes.iter().flat_map(|c| &c.changed).collect();
    mark_overdue_and_fees(connection, &rows, now).await?;
    let loans: Vec<&loan::Model> = changes
        .iter()
        .filter(|c| loan_changed(&c.loan_before, &c.loan_after))
        .map(|c| &c.loan_after)
        .collect();
    update_loan_figures(connection, &loans, now).await?;
    Ok(())
}

/// The installments' overdue marks and fees, by `CASE` on their ids.
async fn mark_overdue_and_fees(
    connection: &impl ConnectionTrait,
    rows: &[&installment::Model],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    // Per row: its id in the filter, and id and value in each of 4 CASEs.
    for chunk in rows.chunks(crate::db::rows_per_statement(
        connection.get_database_backend(),
        9,
    )) {
        let ids: Vec<Uuid> = chunk.iter().map(|row| row.id).collect();
        let case = |value: fn(&installment::Model) -> sea_orm::Value, column| {
            case_by_id(
                installment::Column::Id,
                column,
                chunk.iter().map(|row| (row.id, value(row))),
            )
        };
        installment::Entity::update_many()
            .col_expr(
                installment::Column::Status,
                case(|r| r.status.into(), installment::Column::Status),
            )
            .col_expr(
                installment::Column::OverdueSince,
                case(
                    |r| r.overdue_since.into(),
                    installment::Column::OverdueSince,
                ),
            )
            .col_expr(
                installment::Column::PenaltyMinor,
                case(
                    |r| r.penalty_minor.into(),
                    installment::Column::PenaltyMinor,
                ),
            )
            .col_expr(
                installment::Column::PenaltyAppliedOn,
                case(
                    |r| r.penalty_applied_on.into(),
                    installment::Column::PenaltyAppliedOn,
                ),
            )
            .col_expr(installment::Column::UpdatedAt, Expr::val(now))
            .filter(installment::Column::Id.is_in(ids))
            .exec(connection)
            .await?;
    }
    Ok(())
}

/// The loans' status, penalties and oldest unpaid due date, by `CASE` on
/// their ids.
async fn update_loan_figures(
    connection: &impl ConnectionTrait,
    loans: &[&loan::Model],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    for chunk in loans.chunks(crate::db::rows_per_statement(
        connection.get_database_backend(),
        7,
    )) {
        let ids: Vec<Uuid> = chunk.iter().map(|loan| loan.id).collect();
        let case = |value: fn(&loan::Model) -> sea_orm::Value, column| {
            case_by_id(
                loan::Column::Id,
                column,
                chunk.iter().map(|loan| (loan.id, value(loan))),
            )
        };
        loan::Entity::update_many()
            .col_expr(
                loan::Column::Status,
                case(|l| l.status.into(), loan::Column::Status),
            )
            .col_expr(
                loan::Column::PenaltiesMinor,
                case(|l| l.penalties_minor.into(), loan::Column::PenaltiesMinor),
            )
            .col_expr(
                loan::Column::NextDueDate,
                case(|l| l.next_due_date.into(), loan::Column::NextDueDate),
            )
            .col_expr(loan::Column::UpdatedAt, Expr::val(now))
            .filter(loan::Column::Id.is_in(ids))
            .exec(connection)
            .await?;
    }
    Ok(())
}

/// Why the daily job's writes were refused.
#[derive(Debug, thiserror::Error)]
pub enum BroughtUpToDateError {
    #[error(transparent)]
    Database(#[from] DbErr),
    #[error("bringing loan {0} up to date changed more than overdue marks and fees")]
    Unexpected(Uuid),
}

/// Checks that bringing a loan up to date changed only what the daily
/// job's statements write.
pub fn only_overdue_marks_and_fees(
    writes: &RowWrites,
    before: &HashMap<Uuid, installment::Model>,
) -> Result<(), BroughtUpToDateError> {
    let unexpected = BroughtUpToDateError::Unexpected(writes.loan_after.id);
    if !writes.removed.is_empty() || !writes.inserted.is_empty() {
        return Err(unexpected);
    }
    for row in &writes.changed {
        let Some(old) = before.get(&row.id) else {
            return Err(unexpected);
        };
        let other_columns = |r: &installment::Model| {
            (
                r.due_date,
                r.principal_minor,
                r.interest_minor,
                r.principal_paid_minor,
                r.interest_paid_minor,
                r.penalty_paid_minor,
                r.paid_at,
            )
        };
        if other_columns(old) != other_columns(row) {
            return Err(unexpected);
        }
    }
    let (old, new) = (&writes.loan_before, &writes.loan_after);
    let other_figures = |l: &loan::Model| {
        (
            l.total_paid_minor,
            l.penalties_paid_minor,
            l.installment_minor,
            l.total_payable_minor,
            l.principal_paid_minor,
            l.interest_paid_minor,
            l.paid_off_at,
        )
    };
    if other_figures(old) != other_figures(new) {
        return Err(unexpected);
    }
    Ok(())
}

/// `CASE WHEN id = … THEN value … ELSE column END`.
fn case_by_id<C: ColumnTrait>(
    id: C,
    column: C,
    values: impl Iterator<Item = (Uuid, sea_orm::Value)>,
) -> Expr {
    let case = values.fold(CaseStatement::new(), |case, (row, value)| {
        case.case(id.eq(row), Expr::val(value))
    });
    Expr::Case(Box::new(case.finally(Expr::col(column))))
}
