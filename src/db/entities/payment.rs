use sea_orm::entity::prelude::*;

use super::{ExcessPolicy, LoanStatus, PaymentStatus};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub loan_id: Uuid,
    pub user_id: Uuid,
    pub recorded_by: Uuid,
    pub amount_minor: i64,
    pub principal_minor: i64,
    pub interest_minor: i64,
    pub penalty_minor: i64,
    pub currency: String,
    pub loan_status_after: LoanStatus,
    pub loan_outstanding_after_minor: i64,
    pub idempotency_key: Option<String>,
    pub paid_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    /// The day the money counts from.
    pub value_date: Date,
    pub status: PaymentStatus,
    pub excess: ExcessPolicy,
    pub reversed_at: Option<DateTimeUtc>,
    pub reversed_by: Option<Uuid>,
    pub reversal_reason: Option<String>,
    /// Its portions in the current replay (zero once reversed).
    pub current_principal_minor: i64,
    pub current_interest_minor: i64,
    pub current_penalty_minor: i64,
}

impl ActiveModelBehavior for ActiveModel {}
