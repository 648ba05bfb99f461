//! Payments and overdue installments as clients see them.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::entities::{ExcessPolicy, LoanStatus, PaymentStatus, payment};
use crate::money::Money;

/// A recorded payment: a receipt.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    pub id: Uuid,
    pub loan_id: Uuid,
    /// The borrower.
    pub user_id: Uuid,
    pub amount: Money,
    pub currency: String,
    /// Its allocation in the loan's current replay: a backdated payment
    /// recorded later or a reversal can move it; all zero once reversed.
    pub principal_portion: Money,
    pub interest_portion: Money,
    pub penalty_portion: Money,
    /// When it was recorded.
    #[serde(with = "crate::http::format::timestamp")]
    pub paid_at: DateTime<Utc>,
    /// The day the money counts from.
    pub value_date: NaiveDate,
    pub status: PaymentStatus,
    pub excess: ExcessPolicy,
    #[serde(with = "crate::http::format::timestamp::option")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub reversed_at: Option<DateTime<Utc>>,
    pub reversed_by: Option<Uuid>,
    pub reversal_reason: Option<String>,
    /// Who recorded it: the borrower, or staff on their behalf.
    pub recorded_by: Uuid,
    /// The loan's status right after this payment was recorded.
    pub loan_status: LoanStatus,
    /// What the loan still owed right after this payment was recorded.
    pub loan_outstanding: Money,
}

impl From<payment::Model> for PaymentView {
    fn from(row: payment::Model) -> Self {
        PaymentView {
            id: row.id,
            loan_id: row.loan_id,
            user_id: row.user_id,
            amount: Money::from_minor(row.amount_minor),
            currency: row.currency,
            principal_portion: Money::from_minor(row.current_principal_minor),
            interest_portion: Money::from_minor(row.current_interest_minor),
            penalty_portion: Money::from_minor(row.current_penalty_minor),
            paid_at: row.paid_at,
            value_date: row.value_date,
            status: row.status,
            excess: row.excess,
            reversed_at: row.reversed_at,
            reversed_by: row.reversed_by,
            reversal_reason: row.reversal_reason,
            recorded_by: row.recorded_by,
            loan_status: row.loan_status_after,
            loan_outstanding: Money::from_minor(row.loan_outstanding_after_minor),
        }
    }
}

/// An installment past its due date and not fully paid.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverdueItem {
    pub loan_id: Uuid,
    pub user_id: Uuid,
    pub installment_number: i32,
    pub due_date: NaiveDate,
    /// principal + interest + penalty.
    pub amount_due: Money,
    pub amount_paid: Money,
    pub penalty: Money,
    pub currency: String,
    /// The as-of date minus the due date.
    pub days_overdue: i64,
}

/// What closes a loan on a day (`GET /loans/{id}/payoff`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PayoffView {
    pub loan_id: Uuid,
    pub as_of: NaiveDate,
    pub currency: String,
    /// Every unpaid principal.
    pub principal: Money,
    /// Unpaid interest of installments due by `asOf`, plus the current
    /// period's interest accrued by days; later interest is not owed.
    pub interest: Money,
    /// Every unpaid late fee, including those the rules charge by `asOf`.
    pub penalties: Money,
    /// What `POST /loans/{id}/settle` takes on that day.
    pub total: Money,
}
