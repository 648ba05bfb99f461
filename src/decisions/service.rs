//! Four eyes: opening a decision (when a request needs one), confirming it
//! (the request run again, as of now, as the confirming ADMIN, through the
//! servicing pipeline) or rejecting it, and reading decisions.
//!
//! A decision's status changes once, from `PENDING`, under the decision
//! row's lock: of two ADMINs confirming at once, the second finds it
//! confirmed. Nothing of the action happens before confirmation; a
//! confirmation that the action refuses (the loan was rejected meanwhile,
//! the payment already reversed) changes nothing and leaves the decision
//! pending. Rejections are recorded, never deleted.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::json;
use uuid::Uuid;

pub use super::domain::{DecisionError, NewDecision};
use super::views::{DecisionView, PendingDecision};
use crate::app::AppState;
use crate::audit::{self, AuditAction, AuditEntry, EntityType, RequestMeta};
use crate::auth::actor::Actor;
use crate::cache::CacheKind;
use crate::db::batch::WriteBatch;
use crate::db::entities::decision;
use crate::enums::{DecisionAction, DecisionStatus};
use crate::http::pagination::{Page, PageRequest};
use crate::loans::domain::approval_terms_of;
use crate::loans::views::LoanView;
use crate::payments::views::PaymentView;
use crate::policy::{ConfirmDecisions, Forbidden, Permit};
use crate::servicing::{self, Approval, DecisionRef, Event, Requester, Reversal, WriteOff};

/// Opens a decision in `transaction` (the caller's, which has checked the
/// request as of now under the loan's lock), with its audit entry.
pub async fn open(
    transaction: &DatabaseTransaction,
    new: NewDecision,
    requester: Actor,
    meta: &RequestMeta,
    now: DateTime<Utc>,
) -> Result<DecisionView, DecisionError> {
    let subject = new.payment_id.unwrap_or(new.loan_id);
    let row = decision::ActiveModel {
        id: Set(Uuid::now_v7()),
        action: Set(new.action),
        loan_id: Set(new.loan_id),
        payment_id: Set(new.payment_id),
        subject_id: Set(subject),
        request: Set(new.request),
        status: Set(DecisionStatus::Pending),
        requested_by: Set(requester.id),
        requested_at: Set(now),
        decided_by: Set(None),
        decided_at: Set(None),
        reason: Set(None),
    };
    let opened = decision::Entity::insert(row)
        .exec_with_returning(transaction)
        .await
        .map_err(|error| {
            if crate::db::is_unique_violation(&error) {
                DecisionError::AlreadyPending { action: new.action }
            } else {
                error.into()
            }
        })?;
    audit::record(
        transaction,
        decision_entry(
            &opened,
            AuditAction::DecisionRequested,
            Some(requester.id),
            None,
        ),
        Some(meta),
        now,
    )
    .await?;
    Ok(opened.into())
}

/// Refuses a request done at once while a decision about the same thing
/// waits (possible when the rule was off when it was asked for, or the
/// threshold higher): the pending decision must be confirmed or rejected
/// first.
pub async fn ensure_none_pending(
    connection: &impl ConnectionTrait,
    action: DecisionAction,
    subject_id: Uuid,
) -> Result<(), DecisionError> {
    let pending = decision::Entity::find()
        .select_only()
        .column(decision::Column::Id)
        .filter(decision::Column::Action.eq(action))
        .filter(decision::Column::SubjectId.eq(subject_id))
        // A literal, so that both databases use the partial unique index
        // on pending decisions.
        .filter(Expr::cust("status = 'PENDING'"))
        .into_tuple::<Uuid>()
        .one(connection)
        .await?;
    match pending {
        Some(_) => Err(DecisionError::AlreadyPending { action }),
        None => Ok(()),
    }
}

/// `DECISION_*` about `decision`: its entity is the loan, or the payment
/// of a reversal.
fn decision_entry(
    decision: &decision::Model,
    action: AuditAction,
    actor: Option<Uuid>,
    reason: Option<&str>,
) -> AuditEntry {
    let entity = match decision.payment_id {
        Some(payment) => (EntityType::Payment, payment),
        None => (EntityType::Loan, decision.loan_id),
    };
    let mut details = json!({
        "decisionId": decision.id,
        "action": decision.action.as_str(),
    });
    if let Some(reason) = reason {
        details["reason"] = json!(reason);
    }
    AuditEntry::new(action, actor)
        .entity(entity.0, entity.1)
        .details(details)
}

/// What a confirmed decision answers: what its request would have answered
/// without four eyes.
#[derive(Debug)]
pub enum Confirmed {
    Loan(Box<LoanView>),
    Payment(Box<PaymentView>),
}

/// Confirms a pending decision (another ADMIN): its request runs now, as
/// this ADMIN, with every check again; refused, nothing changes and the
/// decision stays pending.
pub async fn confirm(
    state: &AppState,
    permit: Permit<ConfirmDecisions>,
    meta: &RequestMeta,
    decision_id: Uuid,
) -> Result<Confirmed, DecisionError> {
    let actor = permit.actor();
    let transaction = state.db.begin_write().await?;
    let pending = lock_pending(&transaction, decision_id).await?;
    if pending.requested_by == actor.id {
        return Err(DecisionError::OwnRequest);
    }
    let mut batch = WriteBatch::for_connection(&transaction);
    let applied = servicing::apply(
        &transaction,
        &mut batch,
        &state.servicing(),
        pending.loan_id,
        event_of(&pending, actor)?,
        Requester::new(actor, meta),
    )
    .await?;
    batch.execute(&transaction).await?;
    let now = state.now();
    settle(
        &transaction,
        &pending,
        DecisionStatus::Confirmed,
        actor,
        now,
        None,
    )
    .await?;
    audit::record(
        &transaction,
        decision_entry(
            &pending,
            AuditAction::DecisionConfirmed,
            Some(actor.id),
            None,
        ),
        Some(meta),
        now,
    )
    .await?;
    // The loan answered carries what still waits about it, as GET does.
    let still_pending = pending_for_loan(&transaction, pending.loan_id).await?;
    transaction.commit().await?;
    state
        .cache
        .invalidate(CacheKind::Loan, pending.loan_id)
        .await;
    Ok(match (pending.action, applied.payment) {
        (DecisionAction::ReversePayment, Some(payment)) => {
            Confirmed::Payment(Box::new(PaymentView::from(payment)))
        }
        _ => Confirmed::Loan(Box::new(LoanView {
            pending_decisions: Some(still_pending),
            ..LoanView::new(applied.loan, Some(applied.rows), state.today())
        })),
    })
}

/// The pipeline's event for a decision's request, as `actor` runs it.
fn event_of(pending: &decision::Model, actor: Actor) -> Result<Event, DecisionError> {
    let decision = Some(DecisionRef {
        id: pending.id,
        requested_by: pending.requested_by,
    });
    let reason = || {
        pending.request["reason"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| DecisionError::Request("no reason".to_owned()))
    };
    Ok(match pending.action {
        DecisionAction::ApproveLoan => {
            let terms = approval_terms_of(&pending.request).map_err(DecisionError::Request)?;
            Event::Approve(Approval {
                approver: actor.id,
                annual_interest_rate: terms.annual_interest_rate,
                first_due_date: terms.first_due_date,
                decision,
            })
        }
        DecisionAction::ReversePayment => Event::Reverse(Reversal {
            payment_id: pending
                .payment_id
                .ok_or_else(|| DecisionError::Request("no payment".to_owned()))?,
            reversed_by: actor.id,
            reason: reason()?,
            decision,
        }),
        DecisionAction::WriteOff => Event::WriteOff(WriteOff {
            by: actor.id,
            reason: reason()?,
            decision: DecisionRef {
                id: pending.id,
                requested_by: pending.requested_by,
            },
        }),
    })
}

/// The decision, locked for the rest of the transaction, if pending.
async fn lock_pending(
    transaction: &DatabaseTransaction,
    decision_id: Uuid,
) -> Result<decision::Model, DecisionError> {
    let found = decision::Entity::find_by_id(decision_id)
        .lock_exclusive()
        .one(transaction)
        .await?
        .ok_or(DecisionError::NotFound)?;
    if found.status != DecisionStatus::Pending {
        return Err(DecisionError::NotPending {
            status: found.status,
        });
    }
    Ok(found)
}

/// Sets the decision's outcome (once: it was locked while pending).
async fn settle(
    transaction: &DatabaseTransaction,
    pending: &decision::Model,
    status: DecisionStatus,
    by: Actor,
    now: DateTime<Utc>,
    reason: Option<&str>,
) -> Result<decision::Model, DecisionError> {
    decision::Entity::update_many()
        .col_expr(decision::Column::Status, Expr::value(status))
        .col_expr(decision::Column::DecidedBy, Expr::value(by.id))
        .col_expr(decision::Column::DecidedAt, Expr::value(now))
        .col_expr(
            decision::Column::Reason,
            Expr::value(reason.map(str::to_owned)),
        )
        .filter(decision::Column::Id.eq(pending.id))
        .exec(transaction)
        .await?;
    Ok(decision::Model {
        status,
        decided_by: Some(by.id),
        decided_at: Some(now),
        reason: reason.map(str::to_owned),
        ..pending.clone()
    })
}

/// Rejects a pending decision (ADMIN, MANAGER, or the requester, which
/// withdraws it) with a reason; it stays on record.
pub async fn reject(
    state: &AppState,
    actor: Actor,
    meta: &RequestMeta,
    decision_id: Uuid,
    reason: &str,
) -> Result<DecisionView, DecisionError> {
    let transaction = state.db.begin_write().await?;
    let pending = lock_pending(&transaction, decision_id).await?;
    if !actor.role.is_staff() && actor.id != pending.requested_by {
        return Err(Forbidden("Only staff or the requester may reject a decision.").into());
    }
    let now = state.now();
    let rejected = settle(
        &transaction,
        &pending,
        DecisionStatus::Rejected,
        actor,
        now,
        Some(reason),
    )
    .await?;
    audit::record(
        &transaction,
        decision_entry(
            &rejected,
            AuditAction::DecisionRejected,
            Some(actor.id),
            Some(reason),
        ),
        Some(meta),
        now,
    )
    .await?;
    transaction.commit().await?;
    state
        .cache
        .invalidate(CacheKind::Loan, rejected.loan_id)
        .await;
    Ok(rejected.into())
}

/// Which decisions a list shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecisionFilter {
    pub status: Option<DecisionStatus>,
    pub action: Option<DecisionAction>,
    pub loan_id: Option<Uuid>,
}

/// Decisions, newest first.
pub async fn list(
    connection: &impl ConnectionTrait,
    filter: DecisionFilter,
    page: &PageRequest,
    after: Option<Uuid>,
) -> Result<Page<DecisionView>, DecisionError> {
    let mut query = decision::Entity::find()
        .order_by_desc(decision::Column::Id)
        .limit(page.fetch_limit());
    if let Some(status) = filter.status {
        query = query.filter(decision::Column::Status.eq(status));
    }
    if let Some(action) = filter.action {
        query = query.filter(decision::Column::Action.eq(action));
    }
    if let Some(loan_id) = filter.loan_id {
        query = query.filter(decision::Column::LoanId.eq(loan_id));
    }
    if let Some(after) = after {
        query = query.filter(decision::Column::Id.lt(after));
    }
    let rows = query.all(connection).await?;
    Ok(Page::from_rows(
        rows,
        page,
        |row| vec![row.id.to_string()],
        DecisionView::from,
    ))
}

pub async fn get(
    connection: &impl ConnectionTrait,
    decision_id: Uuid,
) -> Result<DecisionView, DecisionError> {
    decision::Entity::find_by_id(decision_id)
        .one(connection)
        .await?
        .map(DecisionView::from)
        .ok_or(DecisionError::NotFound)
}

/// Every pending decision about a loan (reversals of its payments
/// included), oldest first.
pub async fn pending_for_loan(
    connection: &impl ConnectionTrait,
    loan_id: Uuid,
) -> Result<Vec<PendingDecision>, sea_orm::DbErr> {
    Ok(decision::Entity::find()
        .filter(decision::Column::LoanId.eq(loan_id))
        .filter(decision::Column::Status.eq(DecisionStatus::Pending))
        .order_by_asc(decision::Column::Id)
        .all(connection)
        .await?
        .iter()
        .map(PendingDecision::from)
        .collect())
}
