use sea_orm::entity::prelude::*;

use super::EntryKind;

/// A journal entry: never updated or deleted; posting order is `id`.
///
/// Its lines are the six account columns: the account's debit when above
/// zero, its credit (negated) when below, no line at zero. The chart has
/// six fixed accounts and an entry at most one line per account, so the
/// lines live in the entry's row (one row per payment, not one per line);
/// a `CHECK` keeps them summing to zero.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "journal_entries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub kind: EntryKind,
    pub loan_id: Uuid,
    pub payment_id: Option<Uuid>,
    /// The service's calendar date when it was posted.
    pub booking_date: Date,
    /// The day the money counts from.
    pub value_date: Date,
    pub posted_at: DateTimeUtc,
    pub currency: String,
    pub cash_minor: i64,
    pub loans_receivable_minor: i64,
    pub interest_income_minor: i64,
    pub fee_income_minor: i64,
    pub recoveries_minor: i64,
    pub loan_losses_minor: i64,
}

impl Model {
    /// The signed amounts of the six accounts, in the chart's code order
    /// (`journal::accounts::Account::ALL`).
    pub fn amounts(&self) -> [i64; 6] {
        [
            self.cash_minor,
            self.loans_receivable_minor,
            self.interest_income_minor,
            self.fee_income_minor,
            self.recoveries_minor,
            self.loan_losses_minor,
        ]
    }
}

impl ActiveModelBehavior for ActiveModel {}
