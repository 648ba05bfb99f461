use sea_orm::entity::prelude::*;

use super::EntryKind;

/// A journal entry: never updated or deleted; posting order is `id`.
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
}

impl ActiveModelBehavior for ActiveModel {}
