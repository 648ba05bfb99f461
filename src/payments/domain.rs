//! What a payment request is, what it is answered with, and why it may be
//! refused: the payments capability's own types, free of HTTP.

use chrono::NaiveDate;
use uuid::Uuid;

use crate::db::entities::{ExcessPolicy, LoanStatus};
use crate::http::format::RawJson;
use crate::policy::Forbidden;
use crate::servicing::ServicingError;

/// A validated payment request.
#[derive(Debug, Clone)]
pub struct PaymentRequest {
    pub loan_id: Uuid,
    pub amount: crate::money::Money,
    /// The day the money counts from; `None` for today. Only staff may
    /// choose it (`policy::ChooseValueDate`, applied by the service).
    pub value_date: Option<NaiveDate>,
    pub excess: ExcessPolicy,
    pub idempotency_key: Option<String>,
}

impl PaymentRequest {
    /// An ordinary payment: valued today, its excess to the next
    /// installments. These are combined several to a transaction.
    pub fn is_ordinary(&self) -> bool {
        self.value_date.is_none() && self.excess == ExcessPolicy::NextInstallments
    }
}

/// The answer to a payment request (always a new payment, `201`): the
/// payment as JSON, and whether it is the replay of an earlier answer
/// under the same idempotency key.
#[derive(Debug, Clone)]
pub struct PaymentReply {
    /// The [`crate::payments::views::PaymentView`] as JSON: for a replay,
    /// exactly as first sent.
    pub body: RawJson,
    pub replayed: bool,
}

/// Why a payment operation was refused, or failed.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error(transparent)]
    Servicing(#[from] ServicingError),
    #[error(transparent)]
    Decision(#[from] crate::decisions::domain::DecisionError),
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error("the Idempotency-Key was already used with a different request")]
    KeyReused,
    #[error("a payoff quote cannot be for a day before today ({today})")]
    QuoteBeforeToday { today: NaiveDate },
    #[error("the loan is {}: it has no payoff quote", status.as_str())]
    NoPayoff { status: LoanStatus },
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
    #[error("the payment's writer stopped before answering")]
    WriterLost,
    #[error("the payoff quote does not fit in an amount of money")]
    QuoteOverflow,
    #[error("the payment reply cannot be written: {0}")]
    Reply(#[from] serde_json::Error),
}
