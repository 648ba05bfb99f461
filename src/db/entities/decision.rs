use sea_orm::entity::prelude::*;

use super::{DecisionAction, DecisionStatus};

/// A request that takes a second person: never deleted, its status set
/// once (from `PENDING`).
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "decisions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub action: DecisionAction,
    pub loan_id: Uuid,
    pub payment_id: Option<Uuid>,
    /// The loan, or the payment of a reversal.
    pub subject_id: Uuid,
    /// The request's body as sent (`{}` when none).
    pub request: Json,
    pub status: DecisionStatus,
    pub requested_by: Uuid,
    pub requested_at: DateTimeUtc,
    pub decided_by: Option<Uuid>,
    pub decided_at: Option<DateTimeUtc>,
    pub reason: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}
