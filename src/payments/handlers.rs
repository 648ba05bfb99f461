//! HTTP handlers for `/payments`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::domain::{PaymentReply, PaymentRequest};
use super::idempotency;
use super::service::{self, OverdueCursor};
use super::views::{OverdueItem, PaymentView, PayoffView};
use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::auth::actor::Actor;
use crate::calendar::parse_date;
use crate::db::entities::ExcessPolicy;
use crate::decisions::views::Outcome;
use crate::http::error::AppResult;
use crate::http::json::{DecimalText, Field, JsonBody, JsonBodyAsSent, ReasonBody, Validator};
use crate::http::pagination::{Page, PageParams, PageRequest, QueryParams};
use crate::http::path::PathId;
use crate::http::query::{CalendarDate, Id};
use crate::money::Money;
use crate::policy::{self, ChooseOverdueDate, ChooseValueDate, Permit, ReversePayments};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(record_payment))
        .routes(routes!(reverse_payment))
        .routes(routes!(payoff))
        .routes(routes!(settle))
        .routes(routes!(payment_history))
        .routes(routes!(overdue))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PaymentRequestBody {
    /// A string or number with at most two decimals, at most what the
    /// loan still owes.
    #[serde(default)]
    #[schema(value_type = crate::http::format::PaymentAmountInput, required = true)]
    amount: Field<DecimalText>,
    /// `YYYY-MM-DD`, the day the money counts from (default today). Staff
    /// only; not after today, not before the start of the loan's first
    /// period. An earlier day replays the loan.
    #[serde(default)]
    #[schema(value_type = Option<NaiveDate>)]
    value_date: Field<String>,
    /// What a payment beyond what is due on its value date does:
    /// `NEXT_INSTALLMENTS` (default) pays the next installments in order;
    /// `REDUCE_TERM` and `REDUCE_INSTALLMENT` prepay principal and
    /// reschedule the open installments (fewer of them, or smaller).
    /// `SETTLEMENT` is not taken here: see `POST /loans/{id}/settle`.
    #[serde(default)]
    #[schema(value_type = Option<ExcessPolicy>)]
    excess: Field<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementBody {
    /// Exactly the total of today's payoff quote (`GET
    /// /loans/{id}/payoff`).
    #[serde(default)]
    #[schema(value_type = crate::http::format::PaymentAmountInput, required = true)]
    amount: Field<DecimalText>,
}

/// Records a repayment on a loan (the borrower, ADMIN, MANAGER). Send an
/// `Idempotency-Key` to make retries safe.
#[utoipa::path(post, path = "/payments/{loanId}", tag = "payments",
    security(("bearerAuth" = [])),
    params(
        ("loanId" = Uuid, Path, description = "Loan id"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, description = "1–255 characters; the same key and body return the original response")),
    request_body = PaymentRequestBody,
    responses(
        (status = 201, description = "The payment (also when replayed for a repeated Idempotency-Key)", body = PaymentView),
        (status = 403, description = "A USER sent a value date", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The loan does not take payments, or the key was used with another body", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn record_payment(
    State(state): State<AppState>,
    actor: Actor,
    meta: RequestMeta,
    PathId(loan_id): PathId,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PaymentRequestBody>,
) -> AppResult<Response> {
    let mut validator = Validator::new();
    let max = state.config.loan_max_amount;
    let amount = validator.required("amount", body.amount, |text| {
        Money::parse_within(&text.0, Money::from_minor(1), max)
    });
    let idempotency_key = idempotency_key(&headers, &mut validator);
    // Sending a value date at all is staff's business, well-formed or not:
    // the rule is checked here first so that a USER's malformed date is a
    // 403 too (the service applies the same rule to every caller).
    if !matches!(body.value_date, Field::Missing | Field::Null) {
        Permit::<ChooseValueDate>::check(actor)?;
    }
    let value_date = validator.optional("valueDate", body.value_date, |text| parse_date(&text));
    let excess = validator.optional("excess", body.excess, |text| {
        ExcessPolicy::parse(&text)
            .filter(|policy| *policy != ExcessPolicy::Settlement)
            .ok_or("must be NEXT_INSTALLMENTS, REDUCE_TERM or REDUCE_INSTALLMENT")
    });
    let request = validator.finish(|| {
        Some(PaymentRequest {
            loan_id,
            amount: amount?,
            value_date: value_date?,
            excess: excess?.unwrap_or(ExcessPolicy::NextInstallments),
            idempotency_key: idempotency_key?,
        })
    })?;
    payment_response(service::record_payment(&state, actor, &meta, request).await?)
}

/// The `Idempotency-Key` header: `Some(None)` when absent, `None` (and an
/// error noted) when malformed.
fn idempotency_key(headers: &HeaderMap, validator: &mut Validator) -> Option<Option<String>> {
    match headers.get("idempotency-key") {
        None => Some(None),
        Some(value) => {
            let parsed = value
                .to_str()
                .map_err(|_| "must be 1 to 255 printable ASCII characters")
                .and_then(idempotency::parse_key);
            validator.check("Idempotency-Key", parsed).map(Some)
        }
    }
}

fn payment_response(reply: PaymentReply) -> AppResult<Response> {
    let mut response = (StatusCode::CREATED, reply.body).into_response();
    if reply.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Day of a payoff quote.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
struct PayoffDay {
    /// The day to quote for (default today; not before today). A later day
    /// assumes nothing is paid until then.
    #[param(value_type = Option<chrono::NaiveDate>)]
    as_of: Option<CalendarDate>,
}

/// What closes the loan on a day: due installments in full, the current
/// period's interest accrued by days, later installments' principal only,
/// every unpaid late fee (the borrower, ADMIN, MANAGER).
#[utoipa::path(get, path = "/loans/{id}/payoff", tag = "loans",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "Loan id"), PayoffDay),
    responses(
        (status = 200, description = "The payoff quote", body = PayoffView),
        (status = 404, description = "No such loan (or not yours)", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The loan is not APPROVED or OVERDUE", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn payoff(
    State(state): State<AppState>,
    actor: Actor,
    PathId(loan_id): PathId,
    query: QueryParams,
) -> AppResult<Json<PayoffView>> {
    let mut validator = Validator::new();
    let PayoffDay { as_of } = query.parse_into(&mut validator);
    validator.finish(|| Some(()))?;
    let as_of = as_of.map(|day| day.0);
    Ok(Json(service::payoff(&state, actor, loan_id, as_of).await?))
}

/// Settles the loan today at its payoff quote (the borrower, ADMIN,
/// MANAGER): the interest not yet accrued is waived and the loan is PAID.
/// The settlement is a payment with `excess: SETTLEMENT`. Send an
/// `Idempotency-Key` to make retries safe.
#[utoipa::path(post, path = "/loans/{id}/settle", tag = "payments",
    security(("bearerAuth" = [])),
    params(
        ("id" = Uuid, Path, description = "Loan id"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, description = "1–255 characters; the same key and body return the original response")),
    request_body = SettlementBody,
    responses(
        (status = 201, description = "The settlement payment, with loanStatus PAID", body = PaymentView),
        (status = 404, description = "No such loan (or not yours)", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The loan is not APPROVED or OVERDUE, or the key was used with another body", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The amount is not today's payoff quote (the message gives it)", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn settle(
    State(state): State<AppState>,
    actor: Actor,
    meta: RequestMeta,
    PathId(loan_id): PathId,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SettlementBody>,
) -> AppResult<Response> {
    let mut validator = Validator::new();
    // Any amount is compared with the quote, which states it when they
    // differ (a quote can exceed the largest loan by its interest and fees).
    let amount = validator.required("amount", body.amount, |text| {
        Money::parse_within(&text.0, Money::ZERO, Money::from_minor(i64::MAX))
    });
    let idempotency_key = idempotency_key(&headers, &mut validator);
    let request = validator.finish(|| {
        Some(PaymentRequest {
            loan_id,
            amount: amount?,
            value_date: None,
            excess: ExcessPolicy::Settlement,
            idempotency_key: idempotency_key?,
        })
    })?;
    payment_response(service::record_payment(&state, actor, &meta, request).await?)
}

/// Reverses a posted payment that bounced (ADMIN, MANAGER): it stays in
/// the history marked `REVERSED`, and the loan is replayed without it.
#[utoipa::path(post, path = "/payments/{paymentId}/reverse", tag = "payments",
    security(("bearerAuth" = [])),
    params(("paymentId" = Uuid, Path, description = "Payment id")),
    request_body(content = ReasonBody, description = "Why the payment is reversed, e.g. \"Cheque returned unpaid\""),
    responses(
        (status = 200, description = "The payment, now reversed", body = PaymentView),
        (status = 202, description = "FOUR_EYES_REVERSALS is on: a decision for a second person", body = crate::decisions::views::DecisionView),
        (status = 403, description = "Not staff", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already reversed", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn reverse_payment(
    State(state): State<AppState>,
    permit: Permit<ReversePayments>,
    meta: RequestMeta,
    PathId(payment_id): PathId,
    JsonBodyAsSent(body, sent): JsonBodyAsSent<ReasonBody>,
) -> AppResult<Outcome<PaymentView>> {
    let reason = body.parse()?;
    Ok(service::reverse_payment(&state, permit, &meta, payment_id, reason, sent).await?)
}

/// Loan to filter a payment history by.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
struct LoanFilter {
    #[param(value_type = Option<Uuid>)]
    loan_id: Option<Id>,
}

/// A user's payments, newest first (that user, ADMIN, MANAGER).
#[utoipa::path(get, path = "/payments/user/{userId}", tag = "payments",
    security(("bearerAuth" = [])),
    params(("userId" = Uuid, Path, description = "Borrower id"), LoanFilter, PageParams),
    responses((status = 200, description = "A page of payments", body = Page<PaymentView>)))]
async fn payment_history(
    State(state): State<AppState>,
    actor: Actor,
    PathId(user_id): PathId,
    query: QueryParams,
) -> AppResult<Json<Page<PaymentView>>> {
    let mut validator = Validator::new();
    let page = PageRequest::from_query(&query, &mut validator);
    let after = page.after_id(&mut validator);
    let LoanFilter { loan_id } = query.parse_into(&mut validator);
    validator.finish(|| Some(()))?;
    let loan_id = loan_id.map(|id| id.0);
    Ok(Json(
        service::history_of_user(&state, actor, user_id, loan_id, &page, after).await?,
    ))
}

/// As-of date of the overdue list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
struct AsOf {
    /// Staff only: list what is overdue as of this date (default today).
    #[param(value_type = Option<chrono::NaiveDate>)]
    as_of: Option<CalendarDate>,
}

/// Overdue installments, newest first (latest due date first). Staff see
/// every borrower's; a USER sees only their own.
#[utoipa::path(get, path = "/payments/overdue", tag = "payments",
    security(("bearerAuth" = [])),
    params(AsOf, PageParams),
    responses((status = 200, description = "A page of overdue installments", body = Page<OverdueItem>)))]
async fn overdue(
    State(state): State<AppState>,
    actor: Actor,
    query: QueryParams,
) -> AppResult<Json<Page<OverdueItem>>> {
    let mut validator = Validator::new();
    let page = PageRequest::from_query(&query, &mut validator);
    let after = overdue_cursor(&page, &mut validator);
    // Choosing the day at all is staff's business, well-formed or not.
    if query.has("asOf") {
        Permit::<ChooseOverdueDate>::check(actor)?;
    }
    let AsOf { as_of } = query.parse_into(&mut validator);
    validator.finish(|| Some(()))?;
    let as_of = as_of.map_or_else(|| state.today(), |day| day.0);
    let scope = policy::visible_owner(actor);
    Ok(Json(
        service::overdue(
            state.list_reader(actor.id).await,
            scope,
            as_of,
            &page,
            after,
        )
        .await?,
    ))
}

fn overdue_cursor(page: &PageRequest, validator: &mut Validator) -> Option<OverdueCursor> {
    let parts = page.after.as_ref()?;
    let parsed = match parts.as_slice() {
        [due, loan, number] => parse_date(due)
            .ok()
            .zip(Uuid::parse_str(loan).ok())
            .zip(number.parse::<i32>().ok())
            .map(|((due, loan), number)| (due, loan, number)),
        _ => None,
    };
    if parsed.is_none() {
        validator.error("cursor", "is not a cursor this service issued");
    }
    parsed
}
