use sea_orm::entity::prelude::*;

/// One installment of a loan's schedule as approved: written once, never
/// changed; every replay of the loan starts from these.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "approved_installments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub loan_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub number: i32,
    pub due_date: Date,
    pub principal_minor: i64,
    pub interest_minor: i64,
    /// The installment row of this number: the one a replay that brings
    /// the installment back (after a `REDUCE_TERM` removed it) restores.
    pub installment_id: Option<Uuid>,
}

impl ActiveModelBehavior for ActiveModel {}
