//! Recording payments, reversing them, payoff quotes, payment history,
//! and overdue installments.
//!
//! A payment is one transaction: claim the idempotency key, then the
//! servicing pipeline (lock the loan, bring it up to date, apply the
//! payment, write what changed, announce it), then the stored answer for
//! the key. A crash at any point leaves all of it or none. Ordinary
//! payments (valued today, excess to the next installments) are combined
//! several to a transaction ([`super::combining`]). A reversal is the same
//! pipeline with the reversal as its event.

use std::collections::HashMap;

use chrono::NaiveDate;
use sea_orm::ExprTrait;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, Select,
};
use uuid::Uuid;

use super::combining;
use super::domain::{PaymentError, PaymentReply, PaymentRequest};
use super::recording;
use super::views::{OverdueItem, PaymentView, PayoffView};
use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::auth::actor::Actor;
use crate::cache::CacheKind;
use crate::db::batch::WriteBatch;
use crate::db::entities::{installment, loan, payment};
use crate::decisions::domain::NewDecision;
use crate::decisions::views::DecisionView;
use crate::decisions::views::Outcome;
use crate::enums::DecisionAction;
use crate::http::pagination::{Page, PageRequest};
use crate::loans::domain::Reason;
use crate::money::Money;
use crate::policy::{self, ChooseValueDate, Permit, ReversePayments};
use crate::servicing::{self, Event, Requester, Reversal, ServicingError};

/// Records a payment (the borrower, ADMIN, MANAGER; a value date only by
/// staff).
pub async fn record_payment(
    state: &AppState,
    actor: Actor,
    meta: &RequestMeta,
    request: PaymentRequest,
) -> Result<PaymentReply, PaymentError> {
    if request.value_date.is_some() {
        Permit::<ChooseValueDate>::check(actor)?;
    }
    if request.is_ordinary() {
        return combining::record(state, actor, meta, request).await;
    }
    let transaction = state.db.begin_write().await?;
    if let Some(answer) = recording::claim_key(&transaction, state.now(), actor, &request).await? {
        return answer;
    }
    let mut batch = WriteBatch::for_connection(&transaction);
    let applied = servicing::apply(
        &transaction,
        &mut batch,
        &state.servicing(),
        request.loan_id,
        Event::Pay(recording::order_of(&request, actor)),
        Requester::new(actor, meta),
    )
    .await?;
    let currency = applied.loan.currency.clone();
    let reply = recording::reply(&mut batch, actor, &request, applied)?;
    batch.execute(&transaction).await?;
    transaction.commit().await?;
    state
        .cache
        .invalidate(CacheKind::Loan, request.loan_id)
        .await;
    recording::count_payment(&currency, request.amount);
    Ok(reply)
}

/// The payoff quote of a loan on `as_of` (today when `None`; never
/// earlier): what settling it that day takes, with the late fees the rules
/// charge by then if nothing is paid before (owner, ADMIN, MANAGER).
pub async fn payoff(
    state: &AppState,
    actor: Actor,
    loan_id: Uuid,
    as_of: Option<NaiveDate>,
) -> Result<PayoffView, PaymentError> {
    let today = state.today();
    let as_of = as_of.unwrap_or(today);
    if as_of < today {
        return Err(PaymentError::QuoteBeforeToday { today });
    }
    // Under the loan's lock, so that the loan and its rows are read as one
    // (a settlement committing in between would otherwise quote 0.00).
    let transaction = state.db.begin_write().await?;
    let loan = servicing::load::lock_loan(&transaction, loan_id)
        .await?
        .filter(|loan| policy::may_see(actor, loan.user_id))
        .ok_or(ServicingError::LoanNotFound)?;
    if !loan.status.is_active() {
        return Err(PaymentError::NoPayoff {
            status: loan.status,
        });
    }
    let rows = servicing::load::installments_of(&transaction, loan.id).await?;
    transaction.rollback().await?;
    let mut ledger = servicing::rows::state_of(&rows, None);
    ledger
        .decide_fees_before(as_of, state.config.late_fee_rule())
        .map_err(|error| ServicingError::Reconcile(error.into()))?;
    let quote = crate::ledger::payoff::payoff_quote(&ledger.installments, as_of)
        .ok_or(PaymentError::QuoteOverflow)?;
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

/// Reverses a posted payment (ADMIN, MANAGER): it stays in the history,
/// marked reversed, and the loan is replayed without it in the same
/// transaction, under the loan's lock. With `FOUR_EYES_REVERSALS`, once the
/// reversal passes its checks it waits for a second person instead.
pub async fn reverse_payment(
    state: &AppState,
    permit: Permit<ReversePayments>,
    meta: &RequestMeta,
    payment_id: Uuid,
    reason: Reason,
    request: serde_json::Value,
) -> Result<Outcome<PaymentView>, PaymentError> {
    let actor = permit.actor();
    let transaction = state.db.begin_write().await?;
    let loan_id = servicing::loan_of_payment(&transaction, payment_id).await?;
    if state.config.four_eyes_reversals {
        let asked = AskedReversal {
            loan_id,
            payment_id,
            request,
        };
        let decision = ask_for_reversal(state, &transaction, asked, actor, meta).await?;
        transaction.commit().await?;
        state.cache.invalidate(CacheKind::Loan, loan_id).await;
        return Ok(Outcome::AwaitingDecision(decision));
    }
    crate::decisions::service::ensure_none_pending(
        &transaction,
        DecisionAction::ReversePayment,
        payment_id,
    )
    .await?;
    let mut batch = WriteBatch::for_connection(&transaction);
    let applied = servicing::apply(
        &transaction,
        &mut batch,
        &state.servicing(),
        loan_id,
        Event::Reverse(Reversal {
            payment_id,
            reversed_by: actor.id,
            reason: reason.as_str().to_owned(),
            decision: None,
        }),
        Requester::new(actor, meta),
    )
    .await?;
    batch.execute(&transaction).await?;
    transaction.commit().await?;
    state.cache.invalidate(CacheKind::Loan, loan_id).await;
    metrics::counter!("payments_reversed_total", "currency" => applied.loan.currency.clone())
        .increment(1);
    let payment = applied
        .payment
        .ok_or(ServicingError::Inconsistent("a reversal reversed nothing"))?;
    Ok(Outcome::Done(PaymentView::from(payment)))
}

/// A reversal asked for, with its body as sent.
struct AskedReversal {
    loan_id: Uuid,
    payment_id: Uuid,
    request: serde_json::Value,
}

/// A reversal that needs four eyes: checked as of now under the loan's
/// lock (as the reversal itself would be), then a decision.
async fn ask_for_reversal(
    state: &AppState,
    transaction: &sea_orm::DatabaseTransaction,
    asked: AskedReversal,
    actor: Actor,
    meta: &RequestMeta,
) -> Result<DecisionView, PaymentError> {
    let AskedReversal {
        loan_id,
        payment_id,
        request,
    } = asked;
    let loan = servicing::load::lock_loan(transaction, loan_id)
        .await?
        .ok_or(ServicingError::LoanNotFound)?;
    let reversed = payment::Entity::find_by_id(payment_id)
        .one(transaction)
        .await?
        .ok_or(ServicingError::PaymentNotFound)?;
    let history = servicing::History::load(transaction, &loan, state.config.timezone)
        .await
        .map_err(ServicingError::from)?;
    servicing::check_reversal(&loan, &reversed, &history)?;
    Ok(crate::decisions::service::open(
        transaction,
        NewDecision {
            action: DecisionAction::ReversePayment,
            loan_id,
            payment_id: Some(payment_id),
            request,
        },
        actor,
        meta,
        state.now(),
    )
    .await?)
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
) -> Result<Page<PaymentView>, PaymentError> {
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
) -> Result<Page<PaymentView>, PaymentError> {
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

/// Unpaid installments due before `as_of` of loans not written off, ordered by (due date, loan,
/// number) in `order`, starting after `after`: a range scan of the partial
/// indexes on unpaid installments.
pub fn past_due_unpaid(
    as_of: NaiveDate,
    order: Order,
    after: Option<OverdueCursor>,
) -> Select<installment::Entity> {
    let mut query = installment::Entity::find()
        .filter(installment::overdue_on(as_of))
        .filter(installment::of_loans_still_collected())
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
) -> Result<Page<OverdueItem>, PaymentError> {
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
