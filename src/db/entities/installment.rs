use sea_orm::entity::prelude::*;

use super::InstallmentStatus;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "installments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub loan_id: Uuid,
    pub user_id: Uuid,
    pub number: i32,
    pub due_date: Date,
    pub principal_minor: i64,
    pub interest_minor: i64,
    pub penalty_minor: i64,
    pub principal_paid_minor: i64,
    pub interest_paid_minor: i64,
    pub penalty_paid_minor: i64,
    pub status: InstallmentStatus,
    pub overdue_since: Option<Date>,
    pub penalty_applied_on: Option<Date>,
    pub paid_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
