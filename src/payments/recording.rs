//! The steps of recording a payment that do not change the loan, shared by
//! a payment alone and payments combined: claiming its idempotency key,
//! the answer it gets, and the payment counters.

use chrono::{DateTime, Utc};
use sea_orm::DatabaseTransaction;

use super::domain::{PaymentError, PaymentReply, PaymentRequest};
use super::idempotency::{self, Claim};
use super::views::PaymentView;
use crate::auth::actor::Actor;
use crate::db::batch::WriteBatch;
use crate::db::entities::ExcessPolicy;
use crate::http::format::RawJson;
use crate::money::Money;
use crate::servicing::{Applied, PaymentOrder, ServicingError};

/// Claims the request's `Idempotency-Key`, if it has one, in
/// `transaction`: `None` to go ahead, or the answer the request already
/// has (the first one's, replayed; or a conflict, for another request
/// under the same key).
pub async fn claim_key(
    transaction: &DatabaseTransaction,
    now: DateTime<Utc>,
    actor: Actor,
    request: &PaymentRequest,
) -> Result<Option<Result<PaymentReply, PaymentError>>, sea_orm::DbErr> {
    let Some(key) = &request.idempotency_key else {
        return Ok(None);
    };
    let loan_id = request.loan_id.to_string();
    let amount = request.amount.minor().to_string();
    let chosen_date = request.value_date.map(|day| day.to_string());
    let mut parts = vec!["payment", loan_id.as_str(), amount.as_str()];
    if let Some(day) = &chosen_date {
        parts.extend(["valueDate", day.as_str()]);
    }
    if request.excess != ExcessPolicy::NextInstallments {
        parts.extend(["excess", request.excess.as_str()]);
    }
    let request_fingerprint = idempotency::fingerprint(&parts);
    Ok(
        match idempotency::claim(transaction, actor.id, key, &request_fingerprint, now).await? {
            Claim::Fresh => None,
            Claim::Replay { body } => Some(Ok(PaymentReply {
                body,
                replayed: true,
            })),
            Claim::Mismatch => Some(Err(PaymentError::KeyReused)),
        },
    )
}

/// The servicing order of a payment request made by `payer`.
pub fn order_of(request: &PaymentRequest, payer: Actor) -> PaymentOrder {
    PaymentOrder {
        payer,
        amount: request.amount,
        value_date: request.value_date,
        excess: request.excess,
        idempotency_key: request.idempotency_key.clone(),
    }
}

/// The answer to a payment just recorded, and (with a key) the stored
/// copy a retry gets again, added to `batch`.
pub fn reply(
    batch: &mut WriteBatch,
    actor: Actor,
    request: &PaymentRequest,
    applied: Applied,
) -> Result<PaymentReply, PaymentError> {
    let payment = applied
        .payment
        .ok_or(ServicingError::Inconsistent("a payment recorded nothing"))?;
    let body = RawJson::of(&PaymentView::from(payment))?;
    if let Some(key) = &request.idempotency_key {
        idempotency::push_response(batch, actor.id, key, &body)?;
    }
    Ok(PaymentReply {
        body,
        replayed: false,
    })
}

/// The payment counters of the metrics endpoint.
pub fn count_payment(currency: &str, amount: Money) {
    metrics::counter!("payments_total", "currency" => currency.to_owned()).increment(1);
    metrics::counter!("payments_amount_minor_total", "currency" => currency.to_owned())
        .increment(amount.minor().unsigned_abs());
}
