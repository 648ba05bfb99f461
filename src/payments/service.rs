//! Recording payments, payment history, and overdue installments.
//!
//! A payment is one transaction: claim the idempotency key, lock the loan,
//! work out the loan's state with the payment (one step from the stored
//! state for a payment valued today, a replay from the approved schedule
//! for a backdated one), write what changed, and write the payment, its
//! allocations, the notifications, the audit entries and the stored
//! response. A crash at any point leaves all of it or none. A reversal is
//! the same: lock, replay without the payment, write the difference.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::ExprTrait;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, Order,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select,
};
use serde_json::json;
use uuid::Uuid;

use super::idempotency::{self, Claim};
use super::views::{OverdueItem, PaymentView, PayoffView};
use crate::app::AppState;
use crate::audit::{self, AuditAction, AuditEntry, EntityType};
use crate::auth::actor::Actor;
use crate::cache::CacheKind;
use crate::db::batch::WriteBatch;
use crate::db::entities::{
    ExcessPolicy, LoanStatus, NotificationKind, PaymentStatus, installment, loan, payment,
    payment_allocation,
};
use crate::http::client::RequestMeta;
use crate::http::error::{AppError, AppResult};
use crate::http::format::RawJson;
use crate::http::pagination::{Page, PageRequest};
use crate::ledger::replay::{LedgerError, LedgerState, Posting};
use crate::ledger::{AllocationError, LateFeeRule, PaymentSplit};
use crate::loans::domain::Reason;
use crate::loans::service::lock_loan;
use crate::money::Money;
use crate::notifications::{self, NewNotification};
use crate::policy::{self, Permit, ReversePayments};
use crate::servicing::{self, Reconciliation};
use axum::http::StatusCode;

/// A validated payment request.
#[derive(Debug, Clone)]
pub struct PaymentRequest {
    pub loan_id: Uuid,
    pub amount: Money,
    /// The day the money counts from; `None` for today. Only staff may
    /// choose it (the handler checks).
    pub value_date: Option<NaiveDate>,
    pub excess: ExcessPolicy,
    pub idempotency_key: Option<String>,
}

/// The answer to a payment request: what to send, and whether it is the
/// replay of an earlier answer.
#[derive(Debug, Clone)]
pub struct PaymentReply {
    pub status: StatusCode,
    /// The [`PaymentView`] as JSON: for a replay, exactly as first sent.
    pub body: RawJson,
    pub replayed: bool,
}

pub async fn record_payment(
    state: &AppState,
    actor: Actor,
    meta: &RequestMeta,
    request: PaymentRequest,
) -> AppResult<PaymentReply> {
    if request.value_date.is_none() && request.excess == ExcessPolicy::NextInstallments {
        return super::combining::record(state, actor, meta, request).await;
    }
    let transaction = state.db.begin_write().await?;
    if let Some(answer) = claim_key(&transaction, state, actor, &request).await? {
        return answer;
    }

    // A backdated payment or a prepayment needs every installment.
    let (loan, rows) = servicing::lock_with_installments(&transaction, request.loan_id)
        .await?
        .filter(|(loan, _)| policy::may_see(actor, loan.user_id))
        .ok_or(AppError::NotFound("Loan"))?;
    check_takes_payments(&loan)?;
    // The clock is read under the loan's lock: operations on one loan then
    // see days and recording times in the order they take effect.
    let now = state.now();
    let today = state.today();
    let value_date = request.value_date.unwrap_or(today);
    if value_date > today {
        return Err(AppError::validation(
            "valueDate",
            format!("must not be after today ({today})"),
        ));
    }
    if let Some(earliest) = earliest_value_date(state, &loan).filter(|day| value_date < *day) {
        return Err(AppError::validation(
            "valueDate",
            format!("must not be before {earliest}, the start of the loan's first period"),
        ));
    }
    let posting = Posting {
        id: Uuid::now_v7(),
        amount: request.amount,
        value_date,
        sequence: u64::MAX,
        excess: request.excess,
    };
    let rule = state.config.late_fee_rule();
    let occasion = Occasion {
        today,
        now,
        rule,
        actor: actor.id,
        meta,
    };
    // Everything written from here on waits in one batch, sent with a
    // single round trip just before the commit.
    let mut batch = WriteBatch::for_connection(&transaction);
    let recorded = if value_date == today {
        append_payment(&transaction, &mut batch, &loan, &rows, posting, &occasion).await?
    } else {
        replay_with_payment(&transaction, &loan, &rows, posting, &occasion).await?
    };
    let payment = payment_row(&loan, &recorded, &request, actor, now);
    if recorded.allocations_written_by_replay {
        // The replay's allocations name this payment: it goes first.
        payment::Entity::insert(payment::ActiveModel::from(payment.clone()))
            .exec_without_returning(&transaction)
            .await?;
        servicing::store_payment_portions(
            &transaction,
            &recorded.reconciliation.rows,
            std::slice::from_ref(&payment),
            &recorded.state,
        )
        .await?;
    } else {
        batch.insert(
            payment::Entity::insert(payment::ActiveModel::from(payment.clone())).into_query(),
        );
        push_allocations(&mut batch, &payment, &recorded);
    }
    if request.excess == ExcessPolicy::Settlement {
        announce_settlement(&mut batch, &loan, &recorded, actor, meta, now);
    }
    servicing::announce(
        &mut batch,
        &recorded.reconciliation,
        Some(actor.id),
        Some(meta),
        now,
    );
    announce_payment(&mut batch, &loan, &payment, actor, meta, now);

    let body = RawJson::of(&PaymentView::from(payment)).map_err(AppError::internal)?;
    if let Some(key) = &request.idempotency_key {
        idempotency::push_response(&mut batch, actor.id, key, StatusCode::CREATED, &body)?;
    }
    batch.execute(&transaction).await?;
    transaction.commit().await?;
    state
        .cache
        .invalidate(CacheKind::Loan, request.loan_id)
        .await;
    count_payment(&loan.currency, request.amount);
    Ok(PaymentReply {
        status: StatusCode::CREATED,
        body,
        replayed: false,
    })
}

/// Claims the request's `Idempotency-Key`, if it has one, in
/// `transaction`: `None` to go ahead, or the answer the request already
/// has (the first one's, replayed; or a conflict, for another request
/// under the same key).
pub(super) async fn claim_key(
    transaction: &DatabaseTransaction,
    state: &AppState,
    actor: Actor,
    request: &PaymentRequest,
) -> Result<Option<AppResult<PaymentReply>>, sea_orm::DbErr> {
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
        match idempotency::claim(
            transaction,
            actor.id,
            key,
            &request_fingerprint,
            state.now(),
        )
        .await?
        {
            Claim::Fresh => None,
            Claim::Replay { status, body } => Some(Ok(PaymentReply {
                status,
                body,
                replayed: true,
            })),
            Claim::Mismatch => Some(Err(AppError::Conflict(
                "This Idempotency-Key was already used with a different request.".to_owned(),
            ))),
        },
    )
}

/// Only an APPROVED or OVERDUE loan takes payments.
pub(super) fn check_takes_payments(loan: &loan::Model) -> AppResult<()> {
    if loan.status.is_active() {
        Ok(())
    } else {
        Err(AppError::Conflict(format!(
            "The loan is {}; only APPROVED or OVERDUE loans take payments.",
            loan.status.as_str()
        )))
    }
}

/// The payment counters of the metrics endpoint.
pub(super) fn count_payment(currency: &str, amount: Money) {
    metrics::counter!("payments_total", "currency" => currency.to_owned()).increment(1);
    metrics::counter!("payments_amount_minor_total", "currency" => currency.to_owned())
        .increment(amount.minor().unsigned_abs());
}

/// The payoff quote of a loan on `as_of` (today when `None`; never
/// earlier): what settling it that day takes, with the late fees the rules
/// charge by then if nothing is paid before (owner, ADMIN, MANAGER).
pub async fn payoff(
    state: &AppState,
    actor: Actor,
    loan_id: Uuid,
    as_of: Option<NaiveDate>,
) -> AppResult<PayoffView> {
    let today = state.today();
    let as_of = as_of.unwrap_or(today);
    if as_of < today {
        return Err(AppError::validation(
            "asOf",
            format!("must not be before today ({today})"),
        ));
    }
    // Under the loan's lock, so that the loan and its rows are read as one
    // (a settlement committing in between would otherwise quote 0.00).
    let transaction = state.db.begin_write().await?;
    let loan = lock_loan(&transaction, loan_id)
        .await?
        .filter(|loan| policy::may_see(actor, loan.user_id))
        .ok_or(AppError::NotFound("Loan"))?;
    if !loan.status.is_active() {
        return Err(AppError::Conflict(format!(
            "The loan is {}; only APPROVED or OVERDUE loans have a payoff quote.",
            loan.status.as_str()
        )));
    }
    let rows = servicing::installments_of(&transaction, loan.id).await?;
    transaction.rollback().await?;
    let mut ledger = servicing::state_of(&rows, None);
    ledger
        .decide_fees_before(as_of, state.config.late_fee_rule())
        .map_err(AppError::internal)?;
    let quote = crate::ledger::payoff::payoff_quote(&ledger, as_of)
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("the payoff quote overflows")))?;
    Ok(PayoffView {
        loan_id: loan.id,
        as_of,
        currency: loan.currency,
        principal: quote.principal,
        interest: quote.interest,
        penalties: quote.penalties,
        total: quote.total,
    })
}

/// The earliest value date a payment on `loan` may have: the earlier of
/// its approval date and the start of its first period (first due date
/// minus one month, clamped to month end).
pub fn earliest_value_date(state: &AppState, loan: &loan::Model) -> Option<NaiveDate> {
    let approved_on = loan
        .approved_at
        .map(|moment| crate::clock::local_date(moment, state.config.timezone));
    let first_period_starts = loan
        .first_due_date
        .and_then(|day| day.checked_sub_months(chrono::Months::new(1)));
    match (approved_on, first_period_starts) {
        (Some(a), Some(b)) => Some(Ord::min(a, b)),
        (a, b) => a.or(b),
    }
}

/// When and by whom an operation on a loan happens.
struct Occasion<'a> {
    today: NaiveDate,
    now: DateTime<Utc>,
    rule: LateFeeRule,
    actor: Uuid,
    meta: &'a RequestMeta,
}

impl Occasion<'_> {
    /// `rows` of `loan` brought up to today first (written and announced
    /// if that changes anything): the loan and rows as they now stand.
    async fn bring_up_to_date(
        &self,
        transaction: &DatabaseTransaction,
        loan: &loan::Model,
        rows: &[installment::Model],
    ) -> AppResult<(loan::Model, Vec<installment::Model>)> {
        let current = servicing::up_to_date(loan, rows, self.today, self.now, self.rule)
            .map_err(AppError::internal)?;
        servicing::write_changes(
            transaction,
            loan,
            &current,
            Some(self.actor),
            Some(self.meta),
            self.now,
        )
        .await?;
        Ok((current.loan, current.rows))
    }
}

/// A payment worked out against the loan's rows: the ledger state with it,
/// what that changes, and the payment's own portions.
pub(super) struct RecordedPayment {
    pub state: LedgerState,
    pub reconciliation: Reconciliation,
    pub id: Uuid,
    pub value_date: NaiveDate,
    pub split: PaymentSplit,
    /// A replay may move other payments' allocations too: they are all
    /// written by [`servicing::store_payment_portions`].
    pub allocations_written_by_replay: bool,
}

/// The common path, a payment valued today: one step from the stored
/// state (brought up to today first). An ordinary payment needs only the
/// installments not fully paid; a prepayment or a settlement takes every
/// installment and the loan's terms, to reschedule or to quote.
async fn append_payment(
    transaction: &DatabaseTransaction,
    batch: &mut WriteBatch,
    loan: &loan::Model,
    rows: &[installment::Model],
    posting: Posting,
    occasion: &Occasion<'_>,
) -> AppResult<RecordedPayment> {
    let Occasion {
        today, now, rule, ..
    } = *occasion;
    let terms = if posting.excess == ExcessPolicy::NextInstallments {
        None
    } else {
        Some(
            servicing::current_terms(transaction, loan)
                .await
                .map_err(AppError::internal)?,
        )
    };
    let (loan, rows) = &occasion.bring_up_to_date(transaction, loan, rows).await?;
    let state = servicing::state_of(rows, terms)
        .append(&posting, today, rule)
        .map_err(|error| refused_amount(error, posting.id, loan))?;
    let split = applied_split(&state, posting.id)?;
    let reconciliation =
        servicing::reconcile(loan, rows, &state, today, now).map_err(AppError::internal)?;
    servicing::store(batch, loan, &reconciliation, now)?;
    Ok(RecordedPayment {
        state,
        reconciliation,
        id: posting.id,
        value_date: posting.value_date,
        split,
        allocations_written_by_replay: false,
    })
}

/// A backdated payment: the loan is replayed from its approved schedule
/// with the payment in its place, and every difference written.
async fn replay_with_payment(
    transaction: &DatabaseTransaction,
    loan: &loan::Model,
    stored: &[installment::Model],
    posting: Posting,
    occasion: &Occasion<'_>,
) -> AppResult<RecordedPayment> {
    let Occasion {
        today, now, rule, ..
    } = *occasion;
    let (loan, rows) = &occasion.bring_up_to_date(transaction, loan, stored).await?;
    let history = servicing::History::load(transaction, loan)
        .await
        .map_err(AppError::internal)?;
    let posting = Posting {
        sequence: history.payments.len() as u64,
        ..posting
    };
    let state = servicing::replay_loan(&history, Some(posting), None, today, rule)
        .map_err(|error| refused_amount(error, posting.id, loan))?;
    let split = applied_split(&state, posting.id)?;
    let reconciliation =
        servicing::reconcile_with_ids(loan, rows, &state, today, now, &history.installment_ids)
            .map_err(AppError::internal)?;
    let mut batch = WriteBatch::for_connection(transaction);
    servicing::store(&mut batch, loan, &reconciliation, now)?;
    batch.execute(transaction).await?;
    servicing::store_payment_portions(transaction, &reconciliation.rows, &history.payments, &state)
        .await?;
    Ok(RecordedPayment {
        state,
        reconciliation,
        id: posting.id,
        value_date: posting.value_date,
        split,
        allocations_written_by_replay: true,
    })
}

/// The portions of `payment_id` in `state`, which has just applied it.
pub(super) fn applied_split(state: &LedgerState, payment_id: Uuid) -> AppResult<PaymentSplit> {
    state
        .split_of(payment_id)
        .cloned()
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("the payment was not applied")))
}

/// A payment the ledger cannot take: more than the loan owes, either at
/// its value date or, for a backdated one, for the payments after it; a
/// prepayment leaving nothing to reschedule; a settlement that is not the
/// quote.
pub(super) fn refused_amount(error: LedgerError, payment_id: Uuid, loan: &loan::Model) -> AppError {
    let currency = &loan.currency;
    match error {
        LedgerError::Allocation {
            id,
            source: AllocationError::ExceedsOutstanding { outstanding },
        } if id == payment_id => AppError::validation(
            "amount",
            format!("exceeds the outstanding balance of {outstanding} {currency}"),
        ),
        LedgerError::Allocation {
            source: AllocationError::NotPositive,
            ..
        } => AppError::validation("amount", "must be a positive amount"),
        LedgerError::ExcessTooLarge { id, excess, limit } if id == payment_id => {
            AppError::validation(
                "amount",
                if limit.is_zero() {
                    format!(
                        "pays {excess} {currency} beyond what is due, but no installment is open to prepay; \
                         to close the loan, settle it at its payoff quote"
                    )
                } else {
                    format!(
                        "pays {excess} {currency} beyond what is due; a prepayment must be less than the \
                         {limit} {currency} of principal the open installments owe (to pay everything, \
                         settle the loan at its payoff quote)"
                    )
                },
            )
        }
        LedgerError::Reschedule { id, source } if id == payment_id => AppError::validation(
            "amount",
            format!("the open installments cannot be rescheduled with this prepayment: {source}"),
        ),
        LedgerError::SettlementAmount { id, quote } if id == payment_id => AppError::validation(
            "amount",
            format!(
                "must be exactly today's payoff quote, {total} {currency} (principal {principal}, \
                 interest {interest}, penalties {penalties})",
                total = quote.total,
                principal = quote.principal,
                interest = quote.interest,
                penalties = quote.penalties,
            ),
        ),
        LedgerError::Allocation { .. }
        | LedgerError::ExcessTooLarge { .. }
        | LedgerError::Reschedule { .. }
        | LedgerError::SettlementAmount { .. } => AppError::validation(
            "amount",
            "with this payment on its value date, the payments recorded after it could no longer \
             be applied as they were (they would exceed what the loan owes, or leave nothing to \
             prepay)",
        ),
        other => AppError::internal(other),
    }
}

/// The payment row: its portions as recorded and as they stand now, and
/// the loan's status and balance right after it.
pub(super) fn payment_row(
    loan: &loan::Model,
    recorded: &RecordedPayment,
    request: &PaymentRequest,
    actor: Actor,
    now: DateTime<Utc>,
) -> payment::Model {
    let split = &recorded.split;
    let after = &recorded.reconciliation;
    payment::Model {
        id: recorded.id,
        loan_id: loan.id,
        user_id: loan.user_id,
        recorded_by: actor.id,
        amount_minor: request.amount.minor(),
        principal_minor: split.principal.minor(),
        interest_minor: split.interest.minor(),
        penalty_minor: split.penalty.minor(),
        currency: loan.currency.clone(),
        loan_status_after: after.loan.status,
        loan_outstanding_after_minor: after.outstanding().minor(),
        idempotency_key: request.idempotency_key.clone(),
        paid_at: now,
        created_at: now,
        value_date: recorded.value_date,
        status: PaymentStatus::Posted,
        excess: request.excess,
        reversed_at: None,
        reversed_by: None,
        reversal_reason: None,
        current_principal_minor: split.principal.minor(),
        current_interest_minor: split.interest.minor(),
        current_penalty_minor: split.penalty.minor(),
    }
}

/// How an appended payment was spread over installments.
pub(super) fn push_allocations(
    batch: &mut WriteBatch,
    payment: &payment::Model,
    recorded: &RecordedPayment,
) {
    let allocations: Vec<payment_allocation::ActiveModel> = recorded
        .split
        .allocations
        .iter()
        .filter_map(|allocation| {
            let installment = recorded.reconciliation.rows.get(allocation.index)?;
            Some(payment_allocation::ActiveModel {
                payment_id: Set(payment.id),
                installment_id: Set(installment.id),
                principal_minor: Set(allocation.principal.minor()),
                interest_minor: Set(allocation.interest.minor()),
                penalty_minor: Set(allocation.penalty.minor()),
            })
        })
        .collect();
    // A prepayment valued on a day nothing is due pays no installment.
    if !allocations.is_empty() {
        batch.insert(payment_allocation::Entity::insert_many(allocations).into_query());
    }
}

/// Reverses a posted payment (ADMIN, MANAGER): it stays in the history,
/// marked reversed, and the loan is replayed without it in the same
/// transaction, under the loan's lock.
pub async fn reverse_payment(
    state: &AppState,
    permit: Permit<ReversePayments>,
    meta: &RequestMeta,
    payment_id: Uuid,
    reason: Reason,
) -> AppResult<PaymentView> {
    let actor = permit.actor();
    let transaction = state.db.begin_write().await?;
    let loan_id = payment::Entity::find_by_id(payment_id)
        .one(&transaction)
        .await?
        .ok_or(AppError::NotFound("Payment"))?
        .loan_id;
    let loan = lock_loan(&transaction, loan_id)
        .await?
        .ok_or(AppError::NotFound("Payment"))?;
    let now = state.now();
    let today = state.today();
    // Read again under the loan's lock: a concurrent reversal has finished.
    let reversed = payment::Entity::find_by_id(payment_id)
        .one(&transaction)
        .await?
        .ok_or(AppError::NotFound("Payment"))?;
    if reversed.status == PaymentStatus::Reversed {
        return Err(AppError::Conflict(
            "This payment is already reversed.".to_owned(),
        ));
    }
    let rule = state.config.late_fee_rule();
    let occasion = Occasion {
        today,
        now,
        rule,
        actor: actor.id,
        meta,
    };
    let stored = servicing::installments_of(&transaction, loan.id).await?;
    let (loan, rows) = occasion
        .bring_up_to_date(&transaction, &loan, &stored)
        .await?;
    let history = servicing::History::load(&transaction, &loan)
        .await
        .map_err(AppError::internal)?;
    if history
        .settlement()
        .is_some_and(|settlement| settlement.id != payment_id)
    {
        return Err(AppError::Conflict(
            "The loan was settled after this payment: reverse the settlement first.".to_owned(),
        ));
    }
    let replayed = servicing::replay_loan(&history, None, Some(payment_id), today, rule)
        .map_err(|error| {
            tracing::warn!(%payment_id, error = %error, "reversal refused: the replay without it fails");
            AppError::Conflict(
                "Without this payment, the payments recorded after it would exceed what the loan owes."
                    .to_owned(),
            )
        })?;
    let reconciliation = servicing::reconcile_with_ids(
        &loan,
        &rows,
        &replayed,
        today,
        now,
        &history.installment_ids,
    )
    .map_err(AppError::internal)?;
    let mut batch = WriteBatch::for_connection(&transaction);
    servicing::store(&mut batch, &loan, &reconciliation, now)?;
    batch.execute(&transaction).await?;
    servicing::store_payment_portions(
        &transaction,
        &reconciliation.rows,
        &history.payments,
        &replayed,
    )
    .await?;
    let payment = payment::Entity::update(payment::ActiveModel {
        id: Set(payment_id),
        status: Set(PaymentStatus::Reversed),
        reversed_at: Set(Some(now)),
        reversed_by: Set(Some(actor.id)),
        reversal_reason: Set(Some(reason.as_str().to_owned())),
        ..Default::default()
    })
    .exec(&transaction)
    .await?;
    let mut batch = WriteBatch::for_connection(&transaction);
    servicing::announce(&mut batch, &reconciliation, Some(actor.id), Some(meta), now);
    announce_reversal(&mut batch, &loan, &payment, actor, meta, now);
    batch.execute(&transaction).await?;
    transaction.commit().await?;
    state.cache.invalidate(CacheKind::Loan, loan.id).await;
    metrics::counter!("payments_reversed_total", "currency" => loan.currency.clone()).increment(1);
    Ok(PaymentView::from(payment))
}

/// The borrower's notice and the audit entry of a reversal.
fn announce_reversal(
    batch: &mut WriteBatch,
    loan: &loan::Model,
    payment: &payment::Model,
    actor: Actor,
    meta: &RequestMeta,
    now: DateTime<Utc>,
) {
    let amount = Money::from_minor(payment.amount_minor);
    let reason = payment.reversal_reason.clone().unwrap_or_default();
    notifications::push(
        batch,
        NewNotification {
            user_id: loan.user_id,
            loan_id: loan.id,
            kind: NotificationKind::PaymentReversed,
            title: "Payment reversed".to_owned(),
            message: format!(
                "Your payment of {amount} {currency} valued {value_date} was reversed: {reason}",
                currency = payment.currency,
                value_date = payment.value_date,
            ),
            dedup_key: None,
        },
        now,
    );
    audit::push_many(
        batch,
        vec![
            AuditEntry::new(AuditAction::PaymentReversed, Some(actor.id))
                .entity(EntityType::Payment, payment.id)
                .details(json!({
                    "reason": reason,
                    "loanId": loan.id,
                    "amount": amount.to_string(),
                    "valueDate": payment.value_date,
                })),
        ],
        Some(meta),
        now,
    );
}

/// The `LOAN_SETTLED` audit entry: the quote the settlement paid (its
/// portions) and the interest it waived. (`LOAN_PAID` follows as for any
/// payment that closes a loan.)
fn announce_settlement(
    batch: &mut WriteBatch,
    loan: &loan::Model,
    recorded: &RecordedPayment,
    actor: Actor,
    meta: &RequestMeta,
    now: DateTime<Utc>,
) {
    let split = &recorded.split;
    let waived = Money::from_minor(loan.total_payable_minor)
        - Money::from_minor(recorded.reconciliation.loan.total_payable_minor);
    audit::push(
        batch,
        AuditEntry::new(AuditAction::LoanSettled, Some(actor.id))
            .entity(EntityType::Loan, loan.id)
            .details(json!({
                "paymentId": recorded.id,
                "quote": {
                    "principal": split.principal.to_string(),
                    "interest": split.interest.to_string(),
                    "penalties": split.penalty.to_string(),
                    "total": (split.principal + split.interest + split.penalty).to_string(),
                },
                "interestWaived": waived.to_string(),
            })),
        Some(meta),
        now,
    );
}

/// The borrower's notifications and the audit entries of a payment.
pub(super) fn announce_payment(
    batch: &mut WriteBatch,
    loan: &loan::Model,
    payment: &payment::Model,
    actor: Actor,
    meta: &RequestMeta,
    now: DateTime<Utc>,
) {
    let amount = Money::from_minor(payment.amount_minor);
    let outstanding = Money::from_minor(payment.loan_outstanding_after_minor);
    let currency = &payment.currency;
    notifications::push(
        batch,
        NewNotification {
            user_id: loan.user_id,
            loan_id: loan.id,
            kind: NotificationKind::PaymentReceived,
            title: "Payment received".to_owned(),
            message: format!(
                "We received your payment of {amount} {currency}. Your loan now has {outstanding} {currency} outstanding."
            ),
            dedup_key: None,
        },
        now,
    );
    audit::push(
        batch,
        AuditEntry::new(AuditAction::PaymentRecorded, Some(actor.id))
            .entity(EntityType::Payment, payment.id)
            .details(json!({
                "loanId": loan.id,
                "amount": amount.to_string(),
                "principal": Money::from_minor(payment.principal_minor).to_string(),
                "interest": Money::from_minor(payment.interest_minor).to_string(),
                "penalty": Money::from_minor(payment.penalty_minor).to_string(),
                "loanStatus": payment.loan_status_after.as_str(),
                "loanOutstanding": outstanding.to_string(),
            })),
        Some(meta),
        now,
    );
    if payment.loan_status_after == LoanStatus::Paid {
        notifications::push(
            batch,
            NewNotification {
                user_id: loan.user_id,
                loan_id: loan.id,
                kind: NotificationKind::LoanPaid,
                title: "Loan paid off".to_owned(),
                message: format!(
                    "Your loan of {} {currency} is fully repaid. Thank you!",
                    Money::from_minor(loan.principal_minor)
                ),
                dedup_key: None,
            },
            now,
        );
        audit::push(
            batch,
            AuditEntry::new(AuditAction::LoanPaid, Some(actor.id))
                .entity(EntityType::Loan, loan.id)
                .details(json!({ "paymentId": payment.id })),
            Some(meta),
            now,
        );
    }
}

/// A user's payments, newest first, optionally for one loan (that user,
/// ADMIN, MANAGER).
pub async fn history_of_user(
    state: &AppState,
    actor: Actor,
    user_id: Uuid,
    loan_id: Option<Uuid>,
    page: &PageRequest,
    after: Option<Uuid>,
) -> AppResult<Page<PaymentView>> {
    policy::require_own_or_staff(actor, user_id)?;
    history(
        state.list_reader(actor.id).await,
        user_id,
        loan_id,
        page,
        after,
    )
    .await
}

/// A user's payments, newest first, optionally for one loan.
async fn history(
    connection: &impl ConnectionTrait,
    user_id: Uuid,
    loan_id: Option<Uuid>,
    page: &PageRequest,
    after: Option<Uuid>,
) -> AppResult<Page<PaymentView>> {
    let mut query = payment::Entity::find()
        .filter(payment::Column::UserId.eq(user_id))
        .order_by_desc(payment::Column::Id)
        .limit(page.fetch_limit());
    if let Some(loan_id) = loan_id {
        query = query.filter(payment::Column::LoanId.eq(loan_id));
    }
    if let Some(after) = after {
        query = query.filter(payment::Column::Id.lt(after));
    }
    let rows = query.all(connection).await?;
    Ok(Page::from_rows(
        rows,
        page,
        |p| vec![p.id.to_string()],
        PaymentView::from,
    ))
}

/// Where an overdue list resumes: after this (due date, loan, number).
pub type OverdueCursor = (NaiveDate, Uuid, i32);

/// Unpaid installments due before `as_of`, ordered by (due date, loan,
/// number) in `order`, starting after `after`: a range scan of the partial
/// indexes on unpaid installments.
pub fn past_due_unpaid(
    as_of: NaiveDate,
    order: Order,
    after: Option<OverdueCursor>,
) -> Select<installment::Entity> {
    let mut query = installment::Entity::find()
        .filter(installment::overdue_on(as_of))
        .order_by(installment::Column::DueDate, order.clone())
        .order_by(installment::Column::LoanId, order.clone())
        .order_by(installment::Column::Number, order.clone());
    if let Some((due_date, loan_id, number)) = after {
        let key = Expr::tuple([
            Expr::col(installment::Column::DueDate),
            Expr::col(installment::Column::LoanId),
            Expr::col(installment::Column::Number),
        ]);
        let cursor = Expr::tuple([Expr::val(due_date), Expr::val(loan_id), Expr::val(number)]);
        query = query.filter(match order {
            Order::Desc => key.lt(cursor),
            _ => key.gt(cursor),
        });
    }
    query
}

/// Installments due before `as_of` and not fully paid, newest first (the
/// latest due date first, as every list); only `user_id`'s when given. One
/// backward range scan of a partial index on unpaid installments, however
/// many paid ones there are.
pub async fn overdue(
    connection: &impl ConnectionTrait,
    user_id: Option<Uuid>,
    as_of: NaiveDate,
    page: &PageRequest,
    after: Option<OverdueCursor>,
) -> AppResult<Page<OverdueItem>> {
    let mut query = past_due_unpaid(as_of, Order::Desc, after).limit(page.fetch_limit());
    if let Some(user_id) = user_id {
        query = query.filter(installment::Column::UserId.eq(user_id));
    }
    let rows = query.all(connection).await?;
    let loan_ids: Vec<Uuid> = rows.iter().map(|row| row.loan_id).collect();
    let currencies: HashMap<Uuid, String> = if loan_ids.is_empty() {
        HashMap::new()
    } else {
        loan::Entity::find()
            .filter(loan::Column::Id.is_in(loan_ids))
            .all(connection)
            .await?
            .into_iter()
            .map(|loan| (loan.id, loan.currency))
            .collect()
    };
    Ok(Page::from_rows(
        rows,
        page,
        |row| {
            vec![
                row.due_date.to_string(),
                row.loan_id.to_string(),
                row.number.to_string(),
            ]
        },
        |row| OverdueItem {
            loan_id: row.loan_id,
            user_id: row.user_id,
            installment_number: row.number,
            due_date: row.due_date,
            amount_due: row.figures().amount_due(),
            amount_paid: row.figures().amount_paid(),
            penalty: Money::from_minor(row.penalty_minor),
            currency: currencies.get(&row.loan_id).cloned().unwrap_or_default(),
            days_overdue: (as_of - row.due_date).num_days(),
        },
    ))
}
