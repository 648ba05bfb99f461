//! HTTP handlers for `/reports`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::PortfolioReport;
use crate::app::AppState;
use crate::http::error::AppResult;
use crate::http::format::prefers_csv;
use crate::policy::{Permit, ReadPortfolio};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(portfolio))
}

/// How much of the book is late, and how late, as of today (ADMIN,
/// MANAGER): loans per status, principal disbursed and outstanding,
/// interest and penalties collected, the delinquency buckets and PAR30 /
/// PAR90. With `Accept: text/csv`, the bucket rows as CSV.
#[utoipa::path(get, path = "/reports/portfolio", tag = "reports",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The report; the bucket rows as CSV for `Accept: text/csv`",
            content((PortfolioReport = "application/json"), (String = "text/csv"))),
        (status = 403, description = "Not staff", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn portfolio(
    State(state): State<AppState>,
    permit: Permit<ReadPortfolio>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let connection = state.list_reader(permit.actor().id).await;
    let report = super::portfolio(connection, state.today(), &state.config.currency).await?;
    let mut response = if prefers_csv(&headers) {
        let mut response = super::csv(&report).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
        response
    } else {
        Json(report).into_response()
    };
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    Ok(response)
}
