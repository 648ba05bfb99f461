//! Recording payments, payment history, and overdue installments.
//!
//! A payment is one transaction: claim the idempotency key, lock the loan,
//! allocate the amount to its unpaid installments, update those, the loan's
//! totals and status, and write the payment, its allocations, the
//! notifications, the audit entries and the stored response. A crash at any
//! point leaves all of it or none.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::ExprTrait;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, Order,
    QueryFilter, QueryOrder, QuerySelect, Select,
};
use serde_json::json;
use uuid::Uuid;

use super::idempotency::{self, Claim};
use super::views::{OverdueItem, PaymentView};
use crate::app::AppState;
use crate::audit::{self, AuditAction, AuditEntry, EntityType};
use crate::auth::actor::Actor;
use crate::cache::CacheKind;
use crate::db::entities::{
    InstallmentStatus, LoanStatus, NotificationKind, installment, loan, payment, payment_allocation,
};
use crate::http::client::RequestMeta;
use crate::http::error::{AppError, AppResult};
use crate::http::format::RawJson;
use crate::http::pagination::{Page, PageRequest};
use crate::ledger::{self, AllocationError, Owed, PaymentSplit, allocate_payment};
use crate::loans::service::lock_loan;
use crate::money::Money;
use crate::notifications::{self, NewNotification};
use crate::policy;
use axum::http::StatusCode;

/// A validated payment request.
#[derive(Debug, Clone)]
pub struct PaymentRequest {
    pub loan_id: Uuid,
    pub amount: Money,
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
    let now = state.now();
    let today = state.today();
    let transaction = state.db.begin_write().await?;

    if let Some(key) = &request.idempotency_key {
        let request_fingerprint = idempotency::fingerprint(&[
            "payment",
            &request.loan_id.to_string(),
            &request.amount.minor().to_string(),
        ]);
        match idempotency::claim(&transaction, actor.id, key, &request_fingerprint, now).await? {
            Claim::Fresh => {}
            Claim::Replay { status, body } => {
                transaction.rollback().await?;
                return Ok(PaymentReply {
                    status,
                    body,
                    replayed: true,
                });
            }
            Claim::Mismatch => {
                return Err(AppError::Conflict(
                    "This Idempotency-Key was already used with a different request.".to_owned(),
                ));
            }
        }
    }

    let loan = lock_loan(&transaction, request.loan_id)
        .await?
        .filter(|loan| policy::may_see(actor, loan.user_id))
        .ok_or(AppError::NotFound("Loan"))?;
    if !loan.status.is_active() {
        return Err(AppError::Conflict(format!(
            "The loan is {}; only APPROVED or OVERDUE loans take payments.",
            loan.status.as_str()
        )));
    }
    let unpaid = unpaid_installments(&transaction, loan.id).await?;
    let owed: Vec<Owed> = unpaid.iter().map(|row| row.figures().owed()).collect();
    let split = allocate_payment(request.amount, &owed).map_err(|error| match error {
        AllocationError::ExceedsOutstanding { outstanding } => AppError::validation(
            "amount",
            format!(
                "exceeds the outstanding balance of {outstanding} {}",
                loan.currency
            ),
        ),
        AllocationError::NotPositive => AppError::validation("amount", "must be a positive amount"),
    })?;

    let payment = apply_payment(
        &transaction,
        &loan,
        &unpaid,
        &split,
        &request,
        actor,
        today,
        now,
    )
    .await?;
    announce_payment(&transaction, &loan, &payment, actor, meta, now).await?;

    let body = RawJson::of(&PaymentView::from(payment)).map_err(AppError::internal)?;
    if let Some(key) = &request.idempotency_key {
        idempotency::store_response(&transaction, actor.id, key, StatusCode::CREATED, &body)
            .await?;
    }
    transaction.commit().await?;
    state
        .cache
        .invalidate(CacheKind::Loan, request.loan_id)
        .await;
    metrics::counter!("payments_total", "currency" => loan.currency.clone()).increment(1);
    metrics::counter!("payments_amount_minor_total", "currency" => loan.currency.clone())
        .increment(request.amount.minor().unsigned_abs());
    Ok(PaymentReply {
        status: StatusCode::CREATED,
        body,
        replayed: false,
    })
}

async fn unpaid_installments(
    transaction: &DatabaseTransaction,
    loan_id: Uuid,
) -> AppResult<Vec<installment::Model>> {
    Ok(installment::Entity::find()
        .filter(installment::Column::LoanId.eq(loan_id))
        // A bound value, unlike the overdue filter: here the plan must be
        // the (loan, number) key, not a partial index over every loan.
        .filter(installment::Column::Status.ne(InstallmentStatus::Paid))
        .order_by_asc(installment::Column::Number)
        .all(transaction)
        .await?)
}

/// Writes the allocation to the installments, the loan's new totals and
/// status, and the payment row with its allocations.
#[expect(
    clippy::too_many_arguments,
    reason = "one step of the payment transaction, given everything it writes from"
)]
async fn apply_payment(
    transaction: &DatabaseTransaction,
    loan: &loan::Model,
    unpaid: &[installment::Model],
    split: &PaymentSplit,
    request: &PaymentRequest,
    actor: Actor,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> AppResult<payment::Model> {
    let mut after: Vec<installment::Model> = unpaid.to_vec();
    for allocation in &split.allocations {
        let Some(row) = after.get_mut(allocation.index) else {
            return Err(AppError::internal(anyhow::anyhow!(
                "allocation outside the schedule"
            )));
        };
        let figures = row.figures().after_payment(allocation);
        let settled = figures.is_settled();
        row.penalty_paid_minor = figures.paid.penalty.minor();
        row.interest_paid_minor = figures.paid.interest.minor();
        row.principal_paid_minor = figures.paid.principal.minor();
        row.status = figures.status_after_payment(row.status);
        installment::Entity::update(installment::ActiveModel {
            id: Set(row.id),
            penalty_paid_minor: Set(row.penalty_paid_minor),
            interest_paid_minor: Set(row.interest_paid_minor),
            principal_paid_minor: Set(row.principal_paid_minor),
            status: Set(row.status),
            paid_at: Set(settled.then_some(now)),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec_without_returning(transaction)
        .await?;
    }

    let totals = loan.totals().after_payment(request.amount, split);
    let outstanding = totals.outstanding();
    let still_unpaid = after
        .iter()
        .map(installment::Model::figures)
        .filter(|figures| !figures.is_settled());
    let next_due_date = still_unpaid.clone().map(|figures| figures.due_date).min();
    let any_overdue_left = still_unpaid
        .clone()
        .any(|figures| figures.is_overdue(today));
    let status = ledger::loan_status_after_payment(loan.status, outstanding, any_overdue_left);
    if status != loan.status {
        loan.status.transition(status).map_err(AppError::internal)?;
    }
    loan::Entity::update(loan::ActiveModel {
        id: Set(loan.id),
        status: Set(status),
        total_paid_minor: Set(totals.total_paid.minor()),
        penalties_paid_minor: Set(totals.penalties_paid.minor()),
        next_due_date: Set(next_due_date),
        paid_off_at: Set((status == LoanStatus::Paid).then_some(now)),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec_without_returning(transaction)
    .await?;

    let payment = payment::Entity::insert(payment::ActiveModel {
        id: Set(Uuid::now_v7()),
        loan_id: Set(loan.id),
        user_id: Set(loan.user_id),
        recorded_by: Set(actor.id),
        amount_minor: Set(request.amount.minor()),
        principal_minor: Set(split.principal.minor()),
        interest_minor: Set(split.interest.minor()),
        penalty_minor: Set(split.penalty.minor()),
        currency: Set(loan.currency.clone()),
        loan_status_after: Set(status),
        loan_outstanding_after_minor: Set(outstanding.minor()),
        idempotency_key: Set(request.idempotency_key.clone()),
        paid_at: Set(now),
        created_at: Set(now),
    })
    .exec_with_returning(transaction)
    .await?;
    let allocations = split.allocations.iter().filter_map(|allocation| {
        let installment = unpaid.get(allocation.index)?;
        Some(payment_allocation::ActiveModel {
            payment_id: Set(payment.id),
            installment_id: Set(installment.id),
            principal_minor: Set(allocation.principal.minor()),
            interest_minor: Set(allocation.interest.minor()),
            penalty_minor: Set(allocation.penalty.minor()),
        })
    });
    payment_allocation::Entity::insert_many(allocations)
        .exec_without_returning(transaction)
        .await?;
    Ok(payment)
}

/// The borrower's notifications and the audit entries of a payment.
async fn announce_payment(
    transaction: &DatabaseTransaction,
    loan: &loan::Model,
    payment: &payment::Model,
    actor: Actor,
    meta: &RequestMeta,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let amount = Money::from_minor(payment.amount_minor);
    let outstanding = Money::from_minor(payment.loan_outstanding_after_minor);
    let currency = &payment.currency;
    notifications::write(
        transaction,
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
    )
    .await?;
    audit::record(
        transaction,
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
    )
    .await?;
    if payment.loan_status_after == LoanStatus::Paid {
        notifications::write(
            transaction,
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
        )
        .await?;
        audit::record(
            transaction,
            AuditEntry::new(AuditAction::LoanPaid, Some(actor.id))
                .entity(EntityType::Loan, loan.id)
                .details(json!({ "paymentId": payment.id })),
            Some(meta),
            now,
        )
        .await?;
    }
    Ok(())
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
