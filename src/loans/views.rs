//! Loans and their schedules as clients see them.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::entities::{InstallmentStatus, LoanStatus, installment, loan};
use crate::decisions::views::PendingDecision;
use crate::enums::DelinquencyBucket;
use crate::ledger::delinquency;
use crate::money::{Money, Percent};

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoanView {
    pub id: Uuid,
    pub user_id: Uuid,
    pub status: LoanStatus,
    /// ISO 4217.
    pub currency: String,
    pub principal: Money,
    pub annual_interest_rate: Percent,
    pub term_months: i32,
    pub purpose: Option<String>,
    /// The regular monthly installment (the last may differ by cents).
    pub installment_amount: Money,
    /// Σ (principal + interest) over the schedule.
    pub total_payable: Money,
    /// Σ payments.
    pub total_paid: Money,
    /// Everything still owed: unpaid principal, interest and penalties.
    pub outstanding: Money,
    pub penalties_outstanding: Money,
    /// Due date of the oldest installment not fully paid.
    pub next_due_date: Option<NaiveDate>,
    /// Today − the oldest due date among installments not fully paid and
    /// due before today; 0 if none, and for a loan that is not APPROVED or
    /// OVERDUE.
    pub days_past_due: i64,
    /// `CURRENT`, `1-30`, `31-60`, `61-90` or `91+` by `daysPastDue`;
    /// `null` for a loan that is not APPROVED or OVERDUE.
    pub delinquency_bucket: Option<DelinquencyBucket>,
    pub approved_by: Option<Uuid>,
    #[serde(with = "crate::http::format::timestamp::option")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub approved_at: Option<DateTime<Utc>>,
    pub rejection_reason: Option<String>,
    /// When it was written off; `null` for a loan that never was.
    #[serde(with = "crate::http::format::timestamp::option")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub written_off_at: Option<DateTime<Utc>>,
    /// Its unpaid principal when it was written off; `0.00` otherwise.
    pub principal_written_off: Money,
    #[serde(with = "crate::http::format::timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::http::format::timestamp")]
    pub updated_at: DateTime<Utc>,
    /// The installments, oldest first; empty before approval. Present on
    /// single-loan answers, absent in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<InstallmentView>, required = false)]
    pub schedule: Option<Vec<InstallmentView>>,
    /// Every decision waiting for a second person about the loan
    /// (reversals of its payments included), oldest first. Present on
    /// single-loan answers, absent in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<PendingDecision>, required = false)]
    pub pending_decisions: Option<Vec<PendingDecision>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstallmentView {
    pub number: i32,
    pub due_date: NaiveDate,
    pub principal: Money,
    pub interest: Money,
    /// Late fees applied to this installment.
    pub penalty: Money,
    /// principal + interest + penalty.
    pub amount_due: Money,
    /// What payments have allocated to it.
    pub amount_paid: Money,
    pub status: InstallmentStatus,
}

impl LoanView {
    /// The loan as seen on `today` (its days past due count from it).
    pub fn new(
        loan: loan::Model,
        schedule: Option<Vec<installment::Model>>,
        today: NaiveDate,
    ) -> LoanView {
        let totals = loan.totals();
        let (days_past_due, delinquency_bucket) = if loan.status.is_active() {
            let days = delinquency::days_past_due(loan.next_due_date, today);
            (days, Some(delinquency::bucket_of(days)))
        } else {
            (0, None)
        };
        LoanView {
            id: loan.id,
            user_id: loan.user_id,
            status: loan.status,
            currency: loan.currency,
            principal: Money::from_minor(loan.principal_minor),
            annual_interest_rate: Percent::parse(&loan.annual_interest_rate)
                .unwrap_or_else(|_| Percent::zero()),
            term_months: loan.term_months,
            purpose: loan.purpose,
            installment_amount: Money::from_minor(loan.installment_minor),
            total_payable: Money::from_minor(loan.total_payable_minor),
            total_paid: totals.total_paid,
            outstanding: totals.outstanding(),
            penalties_outstanding: totals.penalties_outstanding(),
            next_due_date: loan.next_due_date,
            days_past_due,
            delinquency_bucket,
            approved_by: loan.approved_by,
            approved_at: loan.approved_at,
            rejection_reason: loan.rejection_reason,
            written_off_at: loan.written_off_at,
            principal_written_off: Money::from_minor(loan.principal_written_off_minor),
            created_at: loan.created_at,
            updated_at: loan.updated_at,
            schedule: schedule.map(|rows| rows.into_iter().map(InstallmentView::from).collect()),
            pending_decisions: None,
        }
    }
}

impl From<installment::Model> for InstallmentView {
    fn from(row: installment::Model) -> Self {
        let figures = row.figures();
        InstallmentView {
            number: row.number,
            due_date: row.due_date,
            principal: Money::from_minor(row.principal_minor),
            interest: Money::from_minor(row.interest_minor),
            penalty: Money::from_minor(row.penalty_minor),
            amount_due: figures.amount_due(),
            amount_paid: figures.amount_paid(),
            status: row.status,
        }
    }
}
