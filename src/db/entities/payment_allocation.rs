use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payment_allocations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub payment_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub installment_id: Uuid,
    pub principal_minor: i64,
    pub interest_minor: i64,
    pub penalty_minor: i64,
}

impl ActiveModelBehavior for ActiveModel {}
