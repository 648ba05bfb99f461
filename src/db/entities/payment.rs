use sea_orm::entity::prelude::*;

use super::LoanStatus;

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
}

impl ActiveModelBehavior for ActiveModel {}
