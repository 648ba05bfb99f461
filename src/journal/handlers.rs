//! HTTP handlers for `/accounting`: the trial balance, the journal, and
//! closing the books.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::service::{self, JournalFilter};
use super::views::{ClosingView, EntryView, TrialBalance};
use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::enums::EntryKind;
use crate::http::error::{AppError, AppResult};
use crate::http::format::prefers_csv;
use crate::http::json::{Field, JsonBody, Validator};
use crate::http::pagination::{Page, PageParams, PageRequest, QueryParams};
use crate::http::query::{CalendarDate, Id};
use crate::policy::{CloseBooks, Permit, ReadBooks};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(trial_balance))
        .routes(routes!(journal))
        .routes(routes!(closing, close))
}

/// The day of a trial balance.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
struct AsOf {
    /// Lines booked on or before this day count (default today; not after
    /// today).
    #[param(value_type = Option<chrono::NaiveDate>)]
    as_of: Option<CalendarDate>,
}

/// Every account's debits, credits and balance as of a day (ADMIN,
/// MANAGER). With `Accept: text/csv`, one CSV row per account.
#[utoipa::path(get, path = "/accounting/trial-balance", tag = "accounting",
    security(("bearerAuth" = [])),
    params(AsOf),
    responses(
        (status = 200, description = "The trial balance; CSV for `Accept: text/csv`",
            content((TrialBalance = "application/json"), (String = "text/csv")))))]
async fn trial_balance(
    State(state): State<AppState>,
    permit: Permit<ReadBooks>,
    headers: HeaderMap,
    query: QueryParams,
) -> AppResult<Response> {
    let mut validator = Validator::new();
    let AsOf { as_of } = query.parse_into(&mut validator);
    let today = state.today();
    if let Some(day) = &as_of
        && day.0 > today
    {
        validator.error("asOf", format!("must not be after today ({today})"));
    }
    validator.finish(|| Some(()))?;
    let as_of = as_of.map_or(today, |day| day.0);
    let connection = state.list_reader(permit.actor().id).await;
    let balance = service::trial_balance(connection, as_of, &state.config.currency).await?;
    Ok(if prefers_csv(&headers) {
        csv_response(Body::from(balance.csv()))
    } else {
        Json(balance).into_response()
    })
}

/// Filters of the journal.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
struct JournalQuery {
    #[param(value_type = Option<uuid::Uuid>)]
    loan_id: Option<Id>,
    #[param(value_type = Option<uuid::Uuid>)]
    payment_id: Option<Id>,
    kind: Option<EntryKind>,
    /// Entries booked on or after this day.
    #[param(value_type = Option<chrono::NaiveDate>)]
    from: Option<CalendarDate>,
    /// Entries booked on or before this day.
    #[param(value_type = Option<chrono::NaiveDate>)]
    to: Option<CalendarDate>,
}

/// The journal, oldest first (posting order) (ADMIN, MANAGER). With
/// `Accept: text/csv`, every matching line as CSV, unpaginated and
/// streamed.
#[utoipa::path(get, path = "/accounting/journal", tag = "accounting",
    security(("bearerAuth" = [])),
    params(JournalQuery, PageParams),
    responses(
        (status = 200, description = "A page of entries; every matching line as CSV for `Accept: text/csv`",
            content((Page<EntryView> = "application/json"), (String = "text/csv")))))]
async fn journal(
    State(state): State<AppState>,
    permit: Permit<ReadBooks>,
    headers: HeaderMap,
    query: QueryParams,
) -> AppResult<Response> {
    let mut validator = Validator::new();
    let page = PageRequest::from_query(&query, &mut validator);
    let after = page.after_id(&mut validator);
    let filters: JournalQuery = query.parse_into(&mut validator);
    validator.finish(|| Some(()))?;
    let filter = JournalFilter {
        loan_id: filters.loan_id.map(|id| id.0),
        payment_id: filters.payment_id.map(|id| id.0),
        kind: filters.kind,
        from: filters.from.map(|day| day.0),
        to: filters.to.map(|day| day.0),
    };
    if prefers_csv(&headers) {
        let database = state.list_reader(permit.actor().id).await.clone();
        let rows = service::csv_stream(database, filter).map(|chunk| {
            chunk.map_err(|error| {
                tracing::error!(%error, "journal CSV: a chunk failed; the download is cut short");
                std::io::Error::other("the journal could not be read")
            })
        });
        return Ok(csv_response(Body::from_stream(rows)));
    }
    let connection = state.list_reader(permit.actor().id).await;
    Ok(Json(service::list(connection, filter, &page, after).await?).into_response())
}

fn csv_response(body: Body) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
    headers.insert(header::VARY, HeaderValue::from_static("accept"));
    response
}

/// How far the books are closed (ADMIN, MANAGER).
#[utoipa::path(get, path = "/accounting/close", tag = "accounting",
    security(("bearerAuth" = [])),
    responses((status = 200, description = "The closing date", body = ClosingView)))]
async fn closing(
    State(state): State<AppState>,
    _permit: Permit<ReadBooks>,
) -> AppResult<Json<ClosingView>> {
    Ok(Json(ClosingView {
        closed_through: service::closed_through(&state.db.write).await?,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    /// `YYYY-MM-DD`, before today and not before the books' current
    /// closing date.
    #[serde(default)]
    #[schema(value_type = chrono::NaiveDate, required = true)]
    through: Field<String>,
}

/// Closes the books through a day (ADMIN): from then on a payment valued
/// on or before it is refused; everything else still books on today's
/// date. Closing through the same day again changes nothing; the books
/// are never reopened.
#[utoipa::path(post, path = "/accounting/close", tag = "accounting",
    security(("bearerAuth" = [])),
    request_body = CloseRequest,
    responses(
        (status = 200, description = "The new closing date", body = ClosingView),
        (status = 409, description = "An earlier day than the books are closed through", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn close(
    State(state): State<AppState>,
    permit: Permit<CloseBooks>,
    meta: RequestMeta,
    JsonBody(body): JsonBody<CloseRequest>,
) -> AppResult<Json<ClosingView>> {
    let mut validator = Validator::new();
    let through = validator.required("through", body.through, |text: String| {
        crate::calendar::parse_date(&text)
    });
    let through = validator.finish(|| through)?;
    service::close(&state, permit, &meta, through)
        .await
        .map(Json)
        .map_err(AppError::from)
}
