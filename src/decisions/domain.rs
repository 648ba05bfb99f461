//! What a decision is made of, and why one is refused: the types the
//! capabilities that open decisions share with the decisions service.

use serde_json::Value;
use uuid::Uuid;

use crate::enums::{DecisionAction, DecisionStatus};
use crate::policy::Forbidden;
use crate::servicing::ServicingError;

/// Why a decision operation was refused, or failed.
#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    #[error("no such decision")]
    NotFound,
    /// A decision of the same action about the same loan (or payment) is
    /// already pending.
    #[error("a {} decision about this is already pending", action.as_str())]
    AlreadyPending { action: DecisionAction },
    #[error("the decision is {}, no longer pending", status.as_str())]
    NotPending { status: DecisionStatus },
    #[error("the requester cannot confirm their own request")]
    OwnRequest,
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// The request, run again as of now, is refused.
    #[error(transparent)]
    Servicing(#[from] ServicingError),
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
    #[error("the stored request cannot be read again: {0}")]
    Request(String),
}

/// A request about to wait for a second person.
#[derive(Debug, Clone)]
pub struct NewDecision {
    pub action: DecisionAction,
    pub loan_id: Uuid,
    pub payment_id: Option<Uuid>,
    /// The body as sent (`{}` when none).
    pub request: Value,
}
