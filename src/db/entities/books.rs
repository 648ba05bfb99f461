use sea_orm::entity::prelude::*;

/// The one row about the books as a whole.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "books")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    /// Nothing may be valued on or before this day (`None`: never closed).
    pub closed_through: Option<Date>,
    /// The day the journal was started (the upgrade that introduced it
    /// booked the loans as they stood then); `None` until it is.
    pub journal_since: Option<Date>,
}

impl ActiveModelBehavior for ActiveModel {}
