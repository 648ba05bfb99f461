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
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let mut response = if prefers_csv(accept) {
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

/// Whether `accept` ranks `text/csv` above JSON: its quality is positive
/// and higher than that of `application/json` (or `application/*`,
/// `*/*`); on a tie, the one listed first.
fn prefers_csv(accept: &str) -> bool {
    let mut csv: Option<(f32, usize)> = None;
    let mut json: Option<(f32, usize)> = None;
    for (position, range) in accept.split(',').enumerate() {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let quality = parts
            .filter_map(|parameter| parameter.trim().strip_prefix("q="))
            .find_map(|value| value.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let slot = match media.as_str() {
            "text/csv" => &mut csv,
            "application/json" | "application/*" | "*/*" => &mut json,
            _ => continue,
        };
        // The most specific range is listed once in practice; keep the best.
        if slot.is_none_or(|(best, _)| quality > best) {
            *slot = Some((quality, position));
        }
    }
    match (csv, json) {
        (Some((csv_q, _)), _) if csv_q <= 0.0 => false,
        (Some(_), None) => true,
        (Some((csv_q, csv_at)), Some((json_q, json_at))) => {
            csv_q > json_q || (csv_q == json_q && csv_at < json_at)
        }
        (None, _) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::prefers_csv;

    #[test]
    fn csv_only_when_the_client_ranks_it_first() {
        assert!(prefers_csv("text/csv"));
        assert!(prefers_csv("TEXT/CSV; charset=utf-8"));
        assert!(prefers_csv("text/csv, application/json;q=0.5"));
        assert!(prefers_csv("text/csv, */*"));
        assert!(!prefers_csv(""));
        assert!(!prefers_csv("application/json"));
        assert!(!prefers_csv("*/*"));
        assert!(!prefers_csv("application/json, text/csv"));
        assert!(!prefers_csv("application/json, text/csv;q=0"));
        assert!(!prefers_csv("text/csv;q=0"));
        assert!(prefers_csv("application/json;q=0.2, text/csv;q=0.9"));
    }
}
