//! Payments and overdue installments as clients see them.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::entities::{LoanStatus, payment};
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
    pub principal_portion: Money,
    pub interest_portion: Money,
    pub penalty_portion: Money,
    #[serde(with = "crate::http::format::timestamp")]
    pub paid_at: DateTime<Utc>,
    /// Who recorded it: the borrower, or staff on their behalf.
    pub recorded_by: Uuid,
    /// The loan's status right after this payment.
    pub loan_status: LoanStatus,
    /// What the loan still owed right after this payment.
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
            principal_portion: Money::from_minor(row.principal_minor),
            interest_portion: Money::from_minor(row.interest_minor),
            penalty_portion: Money::from_minor(row.penalty_minor),
            paid_at: row.paid_at,
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
