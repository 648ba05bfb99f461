use sea_orm::entity::prelude::*;

/// One line of a journal entry: one of debit and credit above zero.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "journal_lines")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub entry_id: Uuid,
    /// The account's code (`1000`, `1100`, …).
    #[sea_orm(primary_key, auto_increment = false)]
    pub account: String,
    pub debit_minor: i64,
    pub credit_minor: i64,
}

impl ActiveModelBehavior for ActiveModel {}
