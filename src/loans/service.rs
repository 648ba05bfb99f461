//! Loans: applying, approving (which generates the schedule), rejecting,
//! cancelling, and reading them back.

use chrono::NaiveDate;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::json;
use uuid::Uuid;

use super::domain::{LoanError, Purpose, Reason, TermMonths};
use super::views::LoanView;
use crate::app::AppState;
use crate::audit::{self, AuditAction, AuditEntry, EntityType, RequestMeta};
use crate::auth::actor::Actor;
use crate::cache::CacheKind;
use crate::db::batch::WriteBatch;
use crate::db::entities::{LoanStatus, installment, loan};
use crate::decisions::domain::NewDecision;
use crate::decisions::views::{DecisionView, Outcome};
use crate::enums::DecisionAction;
use crate::enums::DelinquencyBucket;
use crate::http::format::RawJson;
use crate::http::pagination::{Page, PageRequest};
use crate::ledger::LateFeeRule;
use crate::ledger::delinquency;
use crate::money::Money;
use crate::notifications::{self, messages};
use crate::policy::{self, ApproveLoans, Permit, ReadAllLoans, RejectLoans, RequestWriteOffs};
use crate::servicing::{self, Approval, Event, Requester};

/// A validated loan application.
#[derive(Debug, Clone)]
pub struct Application {
    pub amount: Money,
    pub term_months: TermMonths,
    pub purpose: Option<Purpose>,
}

pub use super::domain::ApprovalTerms;

/// Which loans a list shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoanFilter {
    pub user_id: Option<Uuid>,
    pub status: Option<LoanStatus>,
    pub bucket: Option<DelinquencyBucket>,
}

/// What a loan list may be narrowed to.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListFilter {
    pub status: Option<LoanStatus>,
    /// Only APPROVED/OVERDUE loans this late today.
    pub bucket: Option<DelinquencyBucket>,
}

pub async fn apply(
    state: &AppState,
    actor: Actor,
    meta: &RequestMeta,
    application: Application,
) -> Result<LoanView, LoanError> {
    let now = state.now();
    let rate = state.config.default_annual_interest_rate;
    let row = loan::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(actor.id),
        status: Set(LoanStatus::Pending),
        currency: Set(state.config.currency.clone()),
        principal_minor: Set(application.amount.minor()),
        annual_interest_rate: Set(rate.to_string()),
        term_months: Set(i32::try_from(application.term_months.get()).unwrap_or(i32::MAX)),
        purpose: Set(application.purpose.map(Purpose::into_inner)),
        installment_minor: Set(0),
        total_payable_minor: Set(0),
        total_paid_minor: Set(0),
        penalties_minor: Set(0),
        penalties_paid_minor: Set(0),
        principal_paid_minor: Set(0),
        interest_paid_minor: Set(0),
        written_off_at: Set(None),
        principal_written_off_minor: Set(0),
        paid_before_write_off_minor: Set(0),
        interest_paid_before_write_off_minor: Set(0),
        penalties_paid_before_write_off_minor: Set(0),
        next_due_date: Set(None),
        first_due_date: Set(None),
        approved_by: Set(None),
        approved_at: Set(None),
        rejected_by: Set(None),
        rejected_at: Set(None),
        rejection_reason: Set(None),
        cancelled_at: Set(None),
        paid_off_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let transaction = state.db.begin_write().await?;
    let loan = loan::Entity::insert(row)
        .exec_with_returning(&transaction)
        .await?;
    audit::record(
        &transaction,
        AuditEntry::new(AuditAction::LoanApplied, Some(actor.id))
            .entity(EntityType::Loan, loan.id)
            .details(json!({
                "amount": application.amount.to_string(),
                "termMonths": application.term_months.get(),
                "annualInterestRate": rate.to_string(),
            })),
        Some(meta),
        now,
    )
    .await?;
    transaction.commit().await?;
    metrics::counter!("loans_applied_total").increment(1);
    Ok(LoanView::new(loan, Some(Vec::new()), state.today()))
}

/// A loan as `GET /loans/{id}` serves it, kept in the cache for the day
/// it was computed for: the next day may charge a fee or make an
/// installment overdue.
#[derive(Debug)]
struct CachedLoan {
    owner: Uuid,
    day: NaiveDate,
    /// The JSON of the [`LoanView`] with its schedule, ready to send.
    body: RawJson,
}

/// In Redis: the owner's id, the day, then the JSON, one per line.
impl crate::cache::Cacheable for CachedLoan {
    fn encode(&self) -> String {
        format!("{}\n{}\n{}", self.owner, self.day, self.body.as_text())
    }

    fn decode(text: &str) -> Option<CachedLoan> {
        let (owner, rest) = text.split_once('\n')?;
        let (day, body) = rest.split_once('\n')?;
        Some(CachedLoan {
            owner: owner.parse().ok()?,
            day: crate::calendar::parse_date(day).ok()?,
            body: RawJson::from_stored(body),
        })
    }
}

/// One loan with its schedule as JSON, as of today, if the actor may see
/// it; 404 otherwise. Served from the cache; a miss reads the primary, so
/// a client always reads its own writes.
pub async fn loan_json_for(
    state: &AppState,
    actor: Actor,
    loan_id: Uuid,
) -> Result<RawJson, LoanError> {
    let today = state.today();
    let cached = state
        .cache
        .get_fresh_or_load(
            CacheKind::Loan,
            loan_id,
            |cached: &CachedLoan| cached.day == today,
            || async {
                let Some(loan) = loan::Entity::find_by_id(loan_id)
                    .one(state.db.fresh())
                    .await?
                else {
                    return Ok::<_, LoanError>(None);
                };
                let schedule = servicing::load::installments_of(state.db.fresh(), loan.id).await?;
                let (loan, schedule) = as_of(loan, schedule, today, state.config.late_fee_rule())?;
                let pending =
                    crate::decisions::service::pending_for_loan(state.db.fresh(), loan.id).await?;
                let view = LoanView {
                    pending_decisions: Some(pending),
                    ..LoanView::new(loan, Some(schedule), today)
                };
                let body = RawJson::of(&view)?;
                Ok(Some(CachedLoan {
                    owner: view.user_id,
                    day: today,
                    body,
                }))
            },
        )
        .await?;
    match cached {
        Some(loan) if policy::may_see(actor, loan.owner) => Ok(loan.body.clone()),
        _ => Err(LoanError::NotFound),
    }
}

/// The loan and its installments as the one rule says they are on `today`,
/// which may be ahead of what is stored (a fee day passed since the last
/// write). Computed, never written: the daily job and the next operation
/// on the loan store it.
fn as_of(
    loan: loan::Model,
    rows: Vec<installment::Model>,
    today: NaiveDate,
    rule: LateFeeRule,
) -> Result<(loan::Model, Vec<installment::Model>), LoanError> {
    if !loan.status.is_active() {
        return Ok((loan, rows));
    }
    let reconciliation =
        servicing::rows::bring_up_to_date(&loan, &rows, today, loan.updated_at, rule)
            .map_err(servicing::ServicingError::from)?;
    Ok((reconciliation.loan, reconciliation.rows))
}

/// One borrower's loans, newest first (that borrower, ADMIN, MANAGER).
pub async fn list_of_user(
    state: &AppState,
    actor: Actor,
    user_id: Uuid,
    filter: ListFilter,
    page: &PageRequest,
    after: Option<Uuid>,
) -> Result<Page<LoanView>, LoanError> {
    policy::require_own_or_staff(actor, user_id)?;
    let filter = LoanFilter {
        user_id: Some(user_id),
        status: filter.status,
        bucket: filter.bucket,
    };
    list(
        state.list_reader(actor.id).await,
        filter,
        page,
        after,
        state.today(),
    )
    .await
}

/// Every loan, newest first.
pub async fn list_all(
    state: &AppState,
    permit: Permit<ReadAllLoans>,
    filter: ListFilter,
    page: &PageRequest,
    after: Option<Uuid>,
) -> Result<Page<LoanView>, LoanError> {
    let filter = LoanFilter {
        user_id: None,
        status: filter.status,
        bucket: filter.bucket,
    };
    list(
        state.list_reader(permit.actor().id).await,
        filter,
        page,
        after,
        state.today(),
    )
    .await
}

/// Loans newest first, without schedules, as of `today`. A bucket is a
/// range of the oldest unpaid due date of active loans: the partial
/// indexes on `(next_due_date, id)` and `(user_id, next_due_date, id)`
/// serve it.
async fn list(
    connection: &impl ConnectionTrait,
    filter: LoanFilter,
    page: &PageRequest,
    after: Option<Uuid>,
    today: NaiveDate,
) -> Result<Page<LoanView>, LoanError> {
    let mut query = loan::Entity::find()
        .order_by_desc(loan::Column::Id)
        .limit(page.fetch_limit());
    if let Some(user_id) = filter.user_id {
        query = query.filter(loan::Column::UserId.eq(user_id));
    }
    if let Some(status) = filter.status {
        query = query.filter(loan::Column::Status.eq(status));
    }
    if let Some(bucket) = filter.bucket {
        query = query.filter(loan::is_active());
        let (from, to) = delinquency::due_dates_in(bucket, today);
        if let Some(from) = from {
            let mut on_or_after =
                sea_orm::Condition::any().add(loan::Column::NextDueDate.gte(from));
            if bucket == DelinquencyBucket::Current {
                // An active loan without an unpaid due date (none should
                // exist) is current, as the report and the loan say.
                on_or_after = on_or_after.add(loan::Column::NextDueDate.is_null());
            }
            query = query.filter(on_or_after);
        }
        if let Some(to) = to {
            query = query.filter(loan::Column::NextDueDate.lte(to));
        }
    }
    if let Some(after) = after {
        query = query.filter(loan::Column::Id.lt(after));
    }
    let rows = query.all(connection).await?;
    Ok(Page::from_rows(
        rows,
        page,
        |l| vec![l.id.to_string()],
        |l| LoanView::new(l, None, today),
    ))
}

/// Approves a pending loan and generates its schedule (ADMIN), through
/// the servicing pipeline; a loan whose principal is at least
/// `FOUR_EYES_APPROVAL_AMOUNT` waits for a second ADMIN instead. Two
/// concurrent approvals of one loan: the second waits for the first's
/// lock, then finds the loan APPROVED (or its decision pending) and is
/// refused.
pub async fn approve(
    state: &AppState,
    permit: Permit<ApproveLoans>,
    meta: &RequestMeta,
    loan_id: Uuid,
    terms: ApprovalTerms,
    request: serde_json::Value,
) -> Result<Outcome<LoanView>, LoanError> {
    let actor = permit.actor();
    let transaction = state.db.begin_write().await?;
    if let Some(threshold) = state.config.four_eyes_approval_amount {
        let loan = lock_for(&transaction, loan_id, LoanStatus::Approved).await?;
        if Money::from_minor(loan.principal_minor) >= threshold {
            let decision = crate::decisions::service::open(
                &transaction,
                NewDecision {
                    action: DecisionAction::ApproveLoan,
                    loan_id,
                    payment_id: None,
                    request,
                },
                actor,
                meta,
                state.now(),
            )
            .await?;
            transaction.commit().await?;
            state.cache.invalidate(CacheKind::Loan, loan_id).await;
            return Ok(Outcome::AwaitingDecision(decision));
        }
    }
    crate::decisions::service::ensure_none_pending(
        &transaction,
        DecisionAction::ApproveLoan,
        loan_id,
    )
    .await?;
    let mut batch = WriteBatch::for_connection(&transaction);
    let applied = servicing::apply(
        &transaction,
        &mut batch,
        &state.servicing(),
        loan_id,
        Event::Approve(Approval {
            approver: actor.id,
            annual_interest_rate: terms.annual_interest_rate,
            first_due_date: terms.first_due_date,
            decision: None,
        }),
        Requester::new(actor, meta),
    )
    .await?;
    batch.execute(&transaction).await?;
    transaction.commit().await?;
    state.cache.invalidate(CacheKind::Loan, loan_id).await;
    metrics::counter!("loans_approved_total").increment(1);
    // A loan just approved has no decision pending: none about its
    // approval (checked above), and it has no payment to reverse yet and
    // is not OVERDUE.
    Ok(Outcome::Done(LoanView {
        pending_decisions: Some(Vec::new()),
        ..LoanView::new(applied.loan, Some(applied.rows), state.today())
    }))
}

/// Asks for an OVERDUE loan to be written off (ADMIN, MANAGER): always a
/// decision for a second person.
pub async fn request_write_off(
    state: &AppState,
    permit: Permit<RequestWriteOffs>,
    meta: &RequestMeta,
    loan_id: Uuid,
    request: serde_json::Value,
) -> Result<DecisionView, LoanError> {
    let transaction = state.db.begin_write().await?;
    let loan = servicing::load::lock_loan(&transaction, loan_id)
        .await?
        .ok_or(LoanError::NotFound)?;
    if loan.status != LoanStatus::Overdue {
        return Err(servicing::ServicingError::NotOverdue {
            status: loan.status,
        }
        .into());
    }
    let decision = crate::decisions::service::open(
        &transaction,
        NewDecision {
            action: DecisionAction::WriteOff,
            loan_id,
            payment_id: None,
            request,
        },
        permit.actor(),
        meta,
        state.now(),
    )
    .await?;
    transaction.commit().await?;
    state.cache.invalidate(CacheKind::Loan, loan_id).await;
    Ok(decision)
}

/// Locks a loan for a change of its status, checking the transition.
async fn lock_for(
    transaction: &sea_orm::DatabaseTransaction,
    loan_id: Uuid,
    to: LoanStatus,
) -> Result<loan::Model, LoanError> {
    let loan = servicing::load::lock_loan(transaction, loan_id)
        .await?
        .ok_or(LoanError::NotFound)?;
    loan.status.transition(to)?;
    Ok(loan)
}

/// Rejects a pending loan (ADMIN, MANAGER) with a reason the borrower sees.
pub async fn reject(
    state: &AppState,
    permit: Permit<RejectLoans>,
    meta: &RequestMeta,
    loan_id: Uuid,
    reason: Reason,
) -> Result<LoanView, LoanError> {
    let actor = permit.actor();
    let now = state.now();
    let transaction = state.db.begin_write().await?;
    let loan = lock_for(&transaction, loan_id, LoanStatus::Rejected).await?;
    let updated = loan::ActiveModel {
        id: Set(loan.id),
        status: Set(LoanStatus::Rejected),
        rejected_by: Set(Some(actor.id)),
        rejected_at: Set(Some(now)),
        rejection_reason: Set(Some(reason.as_str().to_owned())),
        updated_at: Set(now),
        ..Default::default()
    };
    let loan = loan::Entity::update(updated).exec(&transaction).await?;
    notifications::write(
        &transaction,
        messages::loan_rejected(&loan, reason.as_str()),
        now,
    )
    .await?;
    audit::record(
        &transaction,
        AuditEntry::new(AuditAction::LoanRejected, Some(actor.id))
            .entity(EntityType::Loan, loan.id)
            .details(json!({ "reason": reason.as_str() })),
        Some(meta),
        now,
    )
    .await?;
    transaction.commit().await?;
    state.cache.invalidate(CacheKind::Loan, loan.id).await;
    Ok(LoanView::new(loan, Some(Vec::new()), state.today()))
}

/// The borrower withdraws their own application while it is pending.
pub async fn cancel(
    state: &AppState,
    actor: Actor,
    meta: &RequestMeta,
    loan_id: Uuid,
) -> Result<LoanView, LoanError> {
    let now = state.now();
    let transaction = state.db.begin_write().await?;
    let loan = servicing::load::lock_loan(&transaction, loan_id)
        .await?
        .filter(|loan| policy::may_see(actor, loan.user_id))
        .ok_or(LoanError::NotFound)?;
    policy::require_borrower(
        actor,
        loan.user_id,
        "Only the borrower may cancel their application.",
    )?;
    loan.status.transition(LoanStatus::Cancelled)?;
    let updated = loan::ActiveModel {
        id: Set(loan.id),
        status: Set(LoanStatus::Cancelled),
        cancelled_at: Set(Some(now)),
        updated_at: Set(now),
        ..Default::default()
    };
    let loan = loan::Entity::update(updated).exec(&transaction).await?;
    audit::record(
        &transaction,
        AuditEntry::new(AuditAction::LoanCancelled, Some(actor.id))
            .entity(EntityType::Loan, loan.id),
        Some(meta),
        now,
    )
    .await?;
    transaction.commit().await?;
    state.cache.invalidate(CacheKind::Loan, loan.id).await;
    Ok(LoanView::new(loan, Some(Vec::new()), state.today()))
}
