//! Locking loans and reading what a change to them starts from: their
//! installment rows, and for a replay their history (the schedule as
//! approved and the posted payments).

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use crate::db::entities::{
    ExcessPolicy, InstallmentStatus, PaymentStatus, approved_installment, installment, loan,
    payment,
};
use crate::ledger::replay::{ApprovedInstallment, LoanTerms, Posting};
use crate::money::{Money, Percent};

/// Which installment rows a change needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsNeeded {
    /// Every row (a replay, a prepayment, a settlement, an approval).
    All,
    /// The rows not fully paid: all that a payment valued today and paying
    /// the next installments can touch.
    NotFullyPaid,
    /// The rows not fully paid and due before the day: all that bringing
    /// a loan up to that day can touch (the daily job).
    PastDueUnpaid(NaiveDate),
}

/// Reads the loan for update: on PostgreSQL the row stays locked until the
/// transaction ends; on SQLite the write transaction already excludes
/// every other writer.
pub async fn lock_loan(
    transaction: &DatabaseTransaction,
    loan_id: Uuid,
) -> Result<Option<loan::Model>, DbErr> {
    loan::Entity::find_by_id(loan_id)
        .lock_exclusive()
        .one(transaction)
        .await
}

/// The loans with these ids, locked for the rest of the transaction in id
/// order: every operation that locks several loans takes them in this one
/// order, so that no two can deadlock.
pub async fn lock_loans(
    transaction: &DatabaseTransaction,
    loan_ids: &[Uuid],
) -> Result<Vec<loan::Model>, DbErr> {
    loan::Entity::find()
        .filter(loan::Column::Id.is_in(loan_ids.iter().copied()))
        .order_by_asc(loan::Column::Id)
        .lock_exclusive()
        .all(transaction)
        .await
}

/// The rows `needed` of each of `loan_ids`, by loan, in number order.
///
/// Read after the loans are locked, on purpose: one `SELECT … JOIN … FOR
/// UPDATE OF loans` would save a round trip, but on PostgreSQL it reads
/// the installments in the snapshot taken before it waited for the lock,
/// and a payment committed meanwhile would be missing from them (found by
/// the concurrency tests). This statement takes a snapshot after the lock
/// is held.
pub async fn rows_of(
    connection: &impl ConnectionTrait,
    loan_ids: &[Uuid],
    needed: RowsNeeded,
) -> Result<BTreeMap<Uuid, Vec<installment::Model>>, DbErr> {
    let mut by_loan: BTreeMap<Uuid, Vec<installment::Model>> =
        loan_ids.iter().map(|id| (*id, Vec::new())).collect();
    if loan_ids.is_empty() {
        return Ok(by_loan);
    }
    let mut query = installment::Entity::find()
        .filter(installment::Column::LoanId.is_in(loan_ids.iter().copied()))
        .order_by_asc(installment::Column::LoanId)
        .order_by_asc(installment::Column::Number);
    query = match needed {
        RowsNeeded::All => query,
        // A bound value, unlike the overdue filter: here the plan must be
        // the (loan, number) key, not a partial index over every loan.
        RowsNeeded::NotFullyPaid => {
            query.filter(installment::Column::Status.ne(InstallmentStatus::Paid))
        }
        RowsNeeded::PastDueUnpaid(day) => query.filter(installment::overdue_on(day)),
    };
    for row in query.all(connection).await? {
        if let Some(rows) = by_loan.get_mut(&row.loan_id) {
            rows.push(row);
        }
    }
    Ok(by_loan)
}

/// Every installment of a loan, in number order.
pub async fn installments_of(
    connection: &impl ConnectionTrait,
    loan_id: Uuid,
) -> Result<Vec<installment::Model>, DbErr> {
    Ok(rows_of(connection, &[loan_id], RowsNeeded::All)
        .await?
        .remove(&loan_id)
        .unwrap_or_default())
}

/// What a replay starts from: the schedule and terms as approved and the
/// posted payments, in recording order.
#[derive(Debug, Clone)]
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
) -> Result<(Vec<ApprovedInstallment>, HashMap<u32, Uuid>), DbErr> {
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

/// The day `loan` was written off in `timezone`, if it was: no late fee
/// is decided from then on.
pub fn written_off_on(loan: &loan::Model, timezone: chrono_tz::Tz) -> Option<NaiveDate> {
    loan.written_off_at
        .map(|moment| crate::clock::local_date(moment, timezone))
}

/// The rate a loan was approved at, as stored on its row.
pub fn rate_of(loan: &loan::Model) -> Result<Percent, crate::money::PercentParseError> {
    Percent::parse(&loan.annual_interest_rate)
}

/// Why a loan's history cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Database(#[from] DbErr),
    #[error("the loan's stored rate is unreadable: {0}")]
    Rate(#[from] crate::money::PercentParseError),
}

impl History {
    pub async fn load(
        connection: &impl ConnectionTrait,
        loan: &loan::Model,
        timezone: chrono_tz::Tz,
    ) -> Result<History, HistoryError> {
        let (approved, installment_ids) = approved_schedule(connection, loan.id).await?;
        let terms = LoanTerms {
            fees_until: written_off_on(loan, timezone),
            ..LoanTerms::approved(&approved, rate_of(loan)?)
        };
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
            .find(|payment| payment.excess == ExcessPolicy::Settlement)
    }
}

/// The terms a prepayment on `loan` reschedules with: its rate, its
/// current regular amount, and the day of month of its approved schedule.
pub async fn current_terms(
    connection: &impl ConnectionTrait,
    loan: &loan::Model,
    timezone: chrono_tz::Tz,
) -> Result<LoanTerms, HistoryError> {
    let (approved, _) = approved_schedule(connection, loan.id).await?;
    Ok(LoanTerms {
        installment_amount: Money::from_minor(loan.installment_minor),
        fees_until: written_off_on(loan, timezone),
        ..LoanTerms::approved(&approved, rate_of(loan)?)
    })
}
