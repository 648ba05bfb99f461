//! HTTP handlers for `/loans`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::domain::{Purpose, TermMonths};
use super::service::{self, Application, ApprovalTerms, ListFilter};
use super::views::LoanView;
use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::auth::actor::Actor;
use crate::calendar::parse_date;
use crate::db::entities::LoanStatus;
use crate::decisions::views::{DecisionView, Outcome};
use crate::enums::DelinquencyBucket;
use crate::http::error::AppResult;
use crate::http::format::RawJson;
use crate::http::json::{
    DecimalText, Field, JsonBody, JsonBodyAsSent, OptionalJsonBodyAsSent, ReasonBody, Validator,
    WholeNumber,
};
use crate::http::pagination::{Page, PageParams, PageRequest, QueryParams};
use crate::http::path::PathId;
use crate::money::{Money, Percent};
use crate::policy::{ApproveLoans, Permit, ReadAllLoans, RejectLoans, RequestWriteOffs};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(apply))
        .routes(routes!(get_loan))
        .routes(routes!(list_user_loans))
        .routes(routes!(list_loans))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(cancel))
        .routes(routes!(write_off))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApplyRequest {
    /// The principal: a string or number with at most two decimals.
    #[serde(default)]
    #[schema(value_type = crate::http::format::LoanAmountInput, required = true)]
    amount: Field<DecimalText>,
    /// 1–360.
    #[serde(default)]
    #[schema(value_type = i32, required = true, minimum = 1, maximum = 360)]
    term_months: Field<WholeNumber>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 500)]
    purpose: Field<String>,
}

/// Applies for a loan; it starts `PENDING`.
#[utoipa::path(post, path = "/loans/apply", tag = "loans",
    security(("bearerAuth" = [])),
    request_body = ApplyRequest,
    responses((status = 201, description = "The application", body = LoanView)))]
async fn apply(
    State(state): State<AppState>,
    actor: Actor,
    meta: RequestMeta,
    JsonBody(body): JsonBody<ApplyRequest>,
) -> AppResult<(StatusCode, Json<LoanView>)> {
    let (min, max) = (state.config.loan_min_amount, state.config.loan_max_amount);
    let mut validator = Validator::new();
    let amount = validator.required("amount", body.amount, |text| {
        Money::parse_within(&text.0, min, max)
    });
    let term_months = validator.required("termMonths", body.term_months, |WholeNumber(months)| {
        TermMonths::parse(months)
    });
    let purpose = validator.optional("purpose", body.purpose, |text: String| {
        Purpose::parse(&text)
    });
    let application = validator.finish(|| {
        Some(Application {
            amount: amount?,
            term_months: term_months?,
            purpose: purpose?.flatten(),
        })
    })?;
    let loan = service::apply(&state, actor, &meta, application).await?;
    Ok((StatusCode::CREATED, Json(loan)))
}

/// A loan with its schedule (the borrower, ADMIN, MANAGER).
#[utoipa::path(get, path = "/loans/{id}", tag = "loans",
    security(("bearerAuth" = [])),
    params(("id" = uuid::Uuid, Path, description = "Loan id")),
    responses((status = 200, description = "The loan and its schedule", body = LoanView)))]
async fn get_loan(
    State(state): State<AppState>,
    actor: Actor,
    PathId(id): PathId,
) -> AppResult<RawJson> {
    Ok(service::loan_json_for(&state, actor, id).await?)
}

/// Status and delinquency bucket to filter loan lists by.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct StatusFilter {
    status: Option<LoanStatus>,
    /// Only APPROVED/OVERDUE loans this many days past due today (`91+`
    /// may be sent as `91%2B`, or as `91+`, which a query string reads as
    /// `91 `).
    bucket: Option<DelinquencyBucket>,
}

/// Reads `?status=`, `?bucket=`, `?limit=`, `?cursor=`.
fn list_query(query: &QueryParams) -> AppResult<(ListFilter, PageRequest, Option<uuid::Uuid>)> {
    let mut validator = Validator::new();
    let page = PageRequest::from_query(query, &mut validator);
    let after = page.after_id(&mut validator);
    let StatusFilter { status, bucket } = query.parse_into(&mut validator);
    validator.finish(|| Some((ListFilter { status, bucket }, page, after)))
}

/// One user's loans, newest first (that user, ADMIN, MANAGER).
#[utoipa::path(get, path = "/loans/user/{userId}", tag = "loans",
    security(("bearerAuth" = [])),
    params(("userId" = uuid::Uuid, Path, description = "Borrower id"), StatusFilter, PageParams),
    responses((status = 200, description = "A page of loans", body = Page<LoanView>)))]
async fn list_user_loans(
    State(state): State<AppState>,
    actor: Actor,
    PathId(user_id): PathId,
    query: QueryParams,
) -> AppResult<Json<Page<LoanView>>> {
    let (filter, page, after) = list_query(&query)?;
    Ok(Json(
        service::list_of_user(&state, actor, user_id, filter, &page, after).await?,
    ))
}

/// Every loan, newest first (ADMIN, MANAGER).
#[utoipa::path(get, path = "/loans", tag = "loans",
    security(("bearerAuth" = [])),
    params(StatusFilter, PageParams),
    responses((status = 200, description = "A page of loans", body = Page<LoanView>)))]
async fn list_loans(
    State(state): State<AppState>,
    permit: Permit<ReadAllLoans>,
    query: QueryParams,
) -> AppResult<Json<Page<LoanView>>> {
    let (filter, page, after) = list_query(&query)?;
    Ok(Json(
        service::list_all(&state, permit, filter, &page, after).await?,
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApproveRequest {
    /// Overrides the rate quoted at application: percent, 0–100.
    #[serde(default)]
    #[schema(value_type = Option<crate::http::format::RateInput>)]
    annual_interest_rate: Field<DecimalText>,
    /// Within a year before or after today; the default is a month from today.
    #[serde(default)]
    #[schema(value_type = Option<NaiveDate>)]
    first_due_date: Field<String>,
}

/// Approves a pending loan and generates its schedule (ADMIN).
#[utoipa::path(patch, path = "/loans/{id}/approve", tag = "loans",
    security(("bearerAuth" = [])),
    params(("id" = uuid::Uuid, Path, description = "Loan id")),
    request_body(content = Option<ApproveRequest>, description = "Optional terms"),
    responses(
        (status = 200, description = "The approved loan with its schedule", body = LoanView),
        (status = 202, description = "The principal is at least FOUR_EYES_APPROVAL_AMOUNT: a decision for a second ADMIN", body = DecisionView),
        (status = 409, description = "The loan is not pending, or its approval already waits for a decision", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn approve(
    State(state): State<AppState>,
    permit: Permit<ApproveLoans>,
    meta: RequestMeta,
    PathId(id): PathId,
    OptionalJsonBodyAsSent(body, sent): OptionalJsonBodyAsSent<ApproveRequest>,
) -> AppResult<Outcome<LoanView>> {
    let body = body.unwrap_or_default();
    let mut validator = Validator::new();
    let rate = validator.optional("annualInterestRate", body.annual_interest_rate, |text| {
        Percent::parse(&text.0).map_err(|error| error.to_string())
    });
    let today = state.today();
    let first_due_date = validator.optional("firstDueDate", body.first_due_date, |text| {
        let date = parse_date(&text).map_err(|error| error.to_string())?;
        if crate::schedule::first_due_date_allowed(date, today) {
            Ok(date)
        } else {
            Err(format!(
                "must be within one year of the approval date {today}"
            ))
        }
    });
    let terms = validator.finish(|| {
        Some(ApprovalTerms {
            annual_interest_rate: rate?,
            first_due_date: first_due_date?,
        })
    })?;
    Ok(service::approve(&state, permit, &meta, id, terms, sent).await?)
}

/// Rejects a pending loan (ADMIN, MANAGER).
#[utoipa::path(patch, path = "/loans/{id}/reject", tag = "loans",
    security(("bearerAuth" = [])),
    params(("id" = uuid::Uuid, Path, description = "Loan id")),
    request_body(content = ReasonBody, description = "The reason, shown to the borrower"),
    responses(
        (status = 200, description = "The rejected loan", body = LoanView),
        (status = 409, description = "The loan is not pending", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn reject(
    State(state): State<AppState>,
    permit: Permit<RejectLoans>,
    meta: RequestMeta,
    PathId(id): PathId,
    JsonBody(body): JsonBody<ReasonBody>,
) -> AppResult<Json<LoanView>> {
    let reason = body.parse()?;
    Ok(Json(
        service::reject(&state, permit, &meta, id, reason).await?,
    ))
}

/// Asks for an OVERDUE loan to be written off (ADMIN, MANAGER). Always
/// four eyes: the answer is the decision another ADMIN confirms.
#[utoipa::path(post, path = "/loans/{id}/write-off", tag = "loans",
    security(("bearerAuth" = [])),
    params(("id" = uuid::Uuid, Path, description = "Loan id")),
    request_body(content = ReasonBody, description = "Why the loan will not be collected"),
    responses(
        (status = 202, description = "The decision that waits for a second ADMIN", body = DecisionView),
        (status = 403, description = "Not staff", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such loan", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The loan is not OVERDUE, or its write-off already waits for a decision", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn write_off(
    State(state): State<AppState>,
    permit: Permit<RequestWriteOffs>,
    meta: RequestMeta,
    PathId(id): PathId,
    JsonBodyAsSent(body, sent): JsonBodyAsSent<ReasonBody>,
) -> AppResult<Outcome<LoanView>> {
    body.parse()?;
    let decision = service::request_write_off(&state, permit, &meta, id, sent).await?;
    Ok(Outcome::AwaitingDecision(decision))
}

/// Withdraws one's own pending application (the borrower).
#[utoipa::path(patch, path = "/loans/{id}/cancel", tag = "loans",
    security(("bearerAuth" = [])),
    params(("id" = uuid::Uuid, Path, description = "Loan id")),
    responses(
        (status = 200, description = "The cancelled loan", body = LoanView),
        (status = 409, description = "The loan is not pending", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn cancel(
    State(state): State<AppState>,
    actor: Actor,
    meta: RequestMeta,
    PathId(id): PathId,
) -> AppResult<Json<LoanView>> {
    Ok(Json(service::cancel(&state, actor, &meta, id).await?))
}
