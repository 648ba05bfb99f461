use sea_orm::entity::prelude::*;

/// Σ debit and Σ credit of the lines booked on a day to an account, by
/// slot (the rows a day's writers are spread over).
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "journal_totals")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub booking_date: Date,
    #[sea_orm(primary_key, auto_increment = false)]
    pub account: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub slot: i32,
    pub debit_minor: i64,
    pub credit_minor: i64,
}

impl ActiveModelBehavior for ActiveModel {}
