//! Decisions as clients see them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::entities::decision;
use crate::enums::{DecisionAction, DecisionStatus};

/// A request that takes a second person.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionView {
    pub id: Uuid,
    pub action: DecisionAction,
    pub loan_id: Uuid,
    /// The payment to reverse; `null` unless a reversal.
    pub payment_id: Option<Uuid>,
    /// The request's body as sent (`{}` when none).
    #[schema(value_type = Object)]
    pub request: serde_json::Value,
    pub status: DecisionStatus,
    pub requested_by: Uuid,
    #[serde(with = "crate::http::format::timestamp")]
    pub requested_at: DateTime<Utc>,
    /// Who confirmed or rejected it; `null` while pending.
    pub decided_by: Option<Uuid>,
    #[serde(with = "crate::http::format::timestamp::option")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub decided_at: Option<DateTime<Utc>>,
    /// Why it was rejected; `null` otherwise.
    pub reason: Option<String>,
}

impl From<decision::Model> for DecisionView {
    fn from(row: decision::Model) -> Self {
        DecisionView {
            id: row.id,
            action: row.action,
            loan_id: row.loan_id,
            payment_id: row.payment_id,
            request: row.request,
            status: row.status,
            requested_by: row.requested_by,
            requested_at: row.requested_at,
            decided_by: row.decided_by,
            decided_at: row.decided_at,
            reason: row.reason,
        }
    }
}

/// A decision still waiting, as a loan lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingDecision {
    pub id: Uuid,
    pub action: DecisionAction,
    pub requested_by: Uuid,
    #[serde(with = "crate::http::format::timestamp")]
    pub requested_at: DateTime<Utc>,
}

impl From<&decision::Model> for PendingDecision {
    fn from(row: &decision::Model) -> Self {
        PendingDecision {
            id: row.id,
            action: row.action,
            requested_by: row.requested_by,
            requested_at: row.requested_at,
        }
    }
}

/// What a request that may need a second person answers: done at once,
/// or a decision waiting for confirmation.
#[derive(Debug)]
pub enum Outcome<T> {
    Done(T),
    AwaitingDecision(DecisionView),
}
