//! Loans: applying, approving (which generates the schedule), rejecting,
//! cancelling, and reading them back.

use chrono::{Datelike, Months, NaiveDate};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::json;
use uuid::Uuid;

use super::domain::{Purpose, Reason, TermMonths};
use super::views::LoanView;
use crate::app::AppState;
use crate::audit::{self, AuditAction, AuditEntry, EntityType};
use crate::auth::actor::Actor;
use crate::cache::CacheKind;
use crate::db::entities::{
    InstallmentStatus, LoanStatus, NotificationKind, approved_installment, installment, loan,
};
use crate::enums::DelinquencyBucket;
use crate::http::client::RequestMeta;
use crate::http::error::{AppError, AppResult};
use crate::http::format::RawJson;
use crate::http::pagination::{Page, PageRequest};
use crate::ledger::LateFeeRule;
use crate::ledger::delinquency;
use crate::money::{Money, Percent};
use crate::notifications::{self, NewNotification};
use crate::policy::{self, ApproveLoans, Permit, ReadAllLoans, RejectLoans};
use crate::schedule::{self, Schedule};
use crate::servicing;

/// A validated loan application.
#[derive(Debug, Clone)]
pub struct Application {
    pub amount: Money,
    pub term_months: TermMonths,
    pub purpose: Option<Purpose>,
}

/// What an approver may set; the rest comes from the application.
#[derive(Debug, Clone, Default)]
pub struct ApprovalTerms {
    pub annual_interest_rate: Option<Percent>,
    pub first_due_date: Option<NaiveDate>,
}

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
) -> AppResult<LoanView> {
    let now = state.now();
    let rate = state.config.default_annual_interest_rate;
    let row = loan::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(actor.id),
        status: Set(LoanStatus::Pending),
        currency: Set(state.config.currency.clone()),
        principal_minor: Set(application.amount.minor()),
        annual_interest_rate: Set(rate.to_string()),
        term_months: Set(i32::try_from(application.term_months.get()).map_err(AppError::internal)?),
        purpose: Set(application.purpose.map(Purpose::into_inner)),
        installment_minor: Set(0),
        total_payable_minor: Set(0),
        total_paid_minor: Set(0),
        penalties_minor: Set(0),
        penalties_paid_minor: Set(0),
        principal_paid_minor: Set(0),
        interest_paid_minor: Set(0),
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
pub async fn loan_json_for(state: &AppState, actor: Actor, loan_id: Uuid) -> AppResult<RawJson> {
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
                    return Ok::<_, AppError>(None);
                };
                let schedule = servicing::installments_of(state.db.fresh(), loan.id).await?;
                let (loan, schedule) = as_of(loan, schedule, today, state.config.late_fee_rule())?;
                let view = LoanView::new(loan, Some(schedule), today);
                let body = RawJson::of(&view).map_err(AppError::internal)?;
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
        _ => Err(AppError::NotFound("Loan")),
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
) -> AppResult<(loan::Model, Vec<installment::Model>)> {
    if !loan.status.is_active() {
        return Ok((loan, rows));
    }
    let mut ledger = servicing::state_of(&rows, None);
    ledger
        .decide_fees_before(today, rule)
        .map_err(AppError::internal)?;
    let reconciliation = servicing::reconcile(&loan, &rows, &ledger, today, loan.updated_at)
        .map_err(AppError::internal)?;
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
) -> AppResult<Page<LoanView>> {
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
) -> AppResult<Page<LoanView>> {
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
) -> AppResult<Page<LoanView>> {
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
        // The same words as the partial indexes' predicate.
        query = query.filter(Expr::cust("status IN ('APPROVED', 'OVERDUE')"));
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

/// Reads the loan for update: on PostgreSQL the row stays locked until the
/// transaction ends; on SQLite the write transaction already excludes
/// every other writer.
pub(crate) async fn lock_loan(
    transaction: &DatabaseTransaction,
    loan_id: Uuid,
) -> AppResult<Option<loan::Model>> {
    Ok(loan::Entity::find_by_id(loan_id)
        .lock_exclusive()
        .one(transaction)
        .await?)
}

fn check_transition(loan: &loan::Model, to: LoanStatus) -> AppResult<()> {
    loan.status.transition(to).map(|_| ()).map_err(|illegal| {
        AppError::Conflict(format!(
            "The loan is {} and cannot become {}.",
            illegal.from.as_str(),
            illegal.to.as_str()
        ))
    })
}

/// Approves a pending loan and generates its schedule (ADMIN). Two
/// concurrent approvals of one loan: the second waits for the first's lock,
/// then finds the loan APPROVED and gets a 409.
pub async fn approve(
    state: &AppState,
    permit: Permit<ApproveLoans>,
    meta: &RequestMeta,
    loan_id: Uuid,
    terms: ApprovalTerms,
) -> AppResult<LoanView> {
    let actor = permit.actor();
    let now = state.now();
    let today = state.today();
    if let Some(first_due_date) = terms.first_due_date {
        check_first_due_date(first_due_date, today)
            .map_err(|message| AppError::validation("firstDueDate", message))?;
    }
    let transaction = state.db.begin_write().await?;
    let loan = lock_loan(&transaction, loan_id)
        .await?
        .ok_or(AppError::NotFound("Loan"))?;
    check_transition(&loan, LoanStatus::Approved)?;

    let rate = match terms.annual_interest_rate {
        Some(rate) => rate,
        None => Percent::parse(&loan.annual_interest_rate).map_err(AppError::internal)?,
    };
    let (first_due_date, day_of_month) = match terms.first_due_date {
        Some(date) => (date, date.day()),
        None => (
            schedule::one_month_after(today)
                .ok_or_else(|| AppError::internal(anyhow::anyhow!("date overflow")))?,
            today.day(),
        ),
    };
    let term = u32::try_from(loan.term_months).map_err(AppError::internal)?;
    let schedule = schedule::build_schedule(
        Money::from_minor(loan.principal_minor),
        rate,
        term,
        first_due_date,
        day_of_month,
    )
    .map_err(AppError::internal)?;

    insert_installments(&transaction, &loan, &schedule, now).await?;
    let installment_amount = schedule.installment_amount;
    let total_payable = schedule.total_payable();
    let updated = loan::ActiveModel {
        id: Set(loan.id),
        status: Set(LoanStatus::Approved),
        annual_interest_rate: Set(rate.to_string()),
        installment_minor: Set(installment_amount.minor()),
        total_payable_minor: Set(total_payable.minor()),
        next_due_date: Set(Some(first_due_date)),
        first_due_date: Set(Some(first_due_date)),
        approved_by: Set(Some(actor.id)),
        approved_at: Set(Some(now)),
        updated_at: Set(now),
        ..Default::default()
    };
    let loan = loan::Entity::update(updated).exec(&transaction).await?;
    notifications::write(
        &transaction,
        NewNotification {
            user_id: loan.user_id,
            loan_id: loan.id,
            kind: NotificationKind::LoanApproved,
            title: "Your loan was approved".to_owned(),
            message: format!(
                "Your loan of {principal} {currency} was approved at {rate} % a year. You will repay \
                 {term} monthly installments of {installment_amount} {currency}, the first due on {first_due_date}.",
                principal = Money::from_minor(loan.principal_minor),
                currency = loan.currency,
            ),
            dedup_key: None,
        },
        now,
    )
    .await?;
    audit::record(
        &transaction,
        AuditEntry::new(AuditAction::LoanApproved, Some(actor.id))
            .entity(EntityType::Loan, loan.id)
            .details(json!({
                "annualInterestRate": rate.to_string(),
                "installmentAmount": installment_amount.to_string(),
                "totalPayable": total_payable.to_string(),
                "firstDueDate": first_due_date,
            })),
        Some(meta),
        now,
    )
    .await?;
    // A loan migrated in with a first due date in the past is brought up
    // to today like any other: overdue, with its late fees, at approval.
    let installments = servicing::installments_of(&transaction, loan.id).await?;
    let mut up_to_date = servicing::state_of(&installments, None);
    up_to_date
        .decide_fees_before(today, state.config.late_fee_rule())
        .map_err(AppError::internal)?;
    let reconciliation = servicing::reconcile(&loan, &installments, &up_to_date, today, now)
        .map_err(AppError::internal)?;
    servicing::write_changes(
        &transaction,
        &loan,
        &reconciliation,
        Some(actor.id),
        Some(meta),
        now,
    )
    .await?;
    transaction.commit().await?;
    state.cache.invalidate(CacheKind::Loan, loan.id).await;
    metrics::counter!("loans_approved_total").increment(1);
    Ok(LoanView::new(
        reconciliation.loan,
        Some(reconciliation.rows),
        today,
    ))
}

/// `firstDueDate` may lie up to a year either side of the approval date
/// (past dates serve loans migrated in from elsewhere).
pub fn check_first_due_date(
    first_due_date: NaiveDate,
    today: NaiveDate,
) -> Result<NaiveDate, String> {
    let earliest = today.checked_sub_months(Months::new(12));
    let latest = today.checked_add_months(Months::new(12));
    match (earliest, latest) {
        (Some(earliest), Some(latest)) if (earliest..=latest).contains(&first_due_date) => {
            Ok(first_due_date)
        }
        _ => Err(format!(
            "must be within one year of the approval date {today}"
        )),
    }
}

async fn insert_installments(
    transaction: &DatabaseTransaction,
    loan: &loan::Model,
    schedule: &Schedule,
    now: chrono::DateTime<chrono::Utc>,
) -> AppResult<()> {
    let ids: Vec<Uuid> = schedule
        .installments
        .iter()
        .map(|_| Uuid::now_v7())
        .collect();
    let rows = schedule.installments.iter().zip(&ids).map(|(planned, id)| {
        // At extreme rates and terms, cent rounding can repay the principal
        // before the last month; the installments left owe nothing and are
        // settled from the start.
        let settled = planned.amount() == Money::ZERO;
        installment::ActiveModel {
            id: Set(*id),
            loan_id: Set(loan.id),
            user_id: Set(loan.user_id),
            number: Set(i32::try_from(planned.number).unwrap_or(i32::MAX)),
            due_date: Set(planned.due_date),
            principal_minor: Set(planned.principal.minor()),
            interest_minor: Set(planned.interest.minor()),
            penalty_minor: Set(0),
            principal_paid_minor: Set(0),
            interest_paid_minor: Set(0),
            penalty_paid_minor: Set(0),
            status: Set(if settled {
                InstallmentStatus::Paid
            } else {
                InstallmentStatus::Pending
            }),
            overdue_since: Set(None),
            penalty_applied_on: Set(None),
            paid_at: Set(settled.then_some(now)),
            created_at: Set(now),
            updated_at: Set(now),
        }
    });
    installment::Entity::insert_many(rows)
        .exec_without_returning(transaction)
        .await?;
    let approved = schedule.installments.iter().zip(&ids).map(|(planned, id)| {
        approved_installment::ActiveModel {
            loan_id: Set(loan.id),
            number: Set(i32::try_from(planned.number).unwrap_or(i32::MAX)),
            due_date: Set(planned.due_date),
            principal_minor: Set(planned.principal.minor()),
            interest_minor: Set(planned.interest.minor()),
            installment_id: Set(Some(*id)),
        }
    });
    approved_installment::Entity::insert_many(approved)
        .exec_without_returning(transaction)
        .await?;
    Ok(())
}

/// Rejects a pending loan (ADMIN, MANAGER) with a reason the borrower sees.
pub async fn reject(
    state: &AppState,
    permit: Permit<RejectLoans>,
    meta: &RequestMeta,
    loan_id: Uuid,
    reason: Reason,
) -> AppResult<LoanView> {
    let actor = permit.actor();
    let now = state.now();
    let transaction = state.db.begin_write().await?;
    let loan = lock_loan(&transaction, loan_id)
        .await?
        .ok_or(AppError::NotFound("Loan"))?;
    check_transition(&loan, LoanStatus::Rejected)?;
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
        NewNotification {
            user_id: loan.user_id,
            loan_id: loan.id,
            kind: NotificationKind::LoanRejected,
            title: "Your loan application was declined".to_owned(),
            message: format!(
                "Your application for {} {} was declined. Reason: {}",
                Money::from_minor(loan.principal_minor),
                loan.currency,
                reason.as_str()
            ),
            dedup_key: None,
        },
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
) -> AppResult<LoanView> {
    let now = state.now();
    let transaction = state.db.begin_write().await?;
    let loan = lock_loan(&transaction, loan_id)
        .await?
        .filter(|loan| policy::may_see(actor, loan.user_id))
        .ok_or(AppError::NotFound("Loan"))?;
    policy::require_borrower(
        actor,
        loan.user_id,
        "Only the borrower may cancel their application.",
    )?;
    check_transition(&loan, LoanStatus::Cancelled)?;
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
