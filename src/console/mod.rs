//! The staff console: server-rendered HTML at `/console` for ADMINs and
//! MANAGERs, served by the same binary with nothing to install and no
//! script at all. Every page is a client of the HTTP API in process
//! ([`api`]), so the console applies exactly the API's rules.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};

use crate::app::AppState;

pub mod api;
mod books;
mod decisions;
mod form;
mod loan;
mod loans;
mod operations;
mod page;
mod reversal;
mod session;

const STYLESHEET: &str = include_str!("../../assets/console/console.css");

/// The console's routes; `api` is the API router its pages call.
pub fn router(api: Router) -> Router<AppState> {
    Router::new()
        .route("/console", get(session::sign_in_page))
        .route("/console/sign-in", post(session::sign_in))
        .route("/console/sign-out", post(session::sign_out))
        .route("/console/console.css", get(stylesheet))
        .route("/console/loans", get(loans::list))
        .route("/console/loans/{id}", get(loan::show))
        .route("/console/loans/{id}/approve", post(loan::approve))
        .route("/console/loans/{id}/reject", post(loan::reject))
        .route("/console/loans/{id}/payments", post(loan::record_payment))
        .route("/console/loans/{id}/write-off", post(loan::write_off))
        .route(
            "/console/payments/{id}/reverse",
            get(reversal::show).post(reversal::reverse),
        )
        .route("/console/decisions", get(decisions::inbox))
        .route("/console/decisions/{id}/confirm", post(decisions::confirm))
        .route("/console/decisions/{id}/reject", post(decisions::reject))
        .route("/console/portfolio", get(books::portfolio))
        .route("/console/portfolio.csv", get(books::portfolio_csv))
        .route("/console/trial-balance", get(books::trial_balance))
        .route("/console/trial-balance.csv", get(books::trial_balance_csv))
        .route("/console/overdue", get(operations::overdue))
        .route("/console/jobs", get(operations::jobs))
        .route("/console/jobs/{name}/run", post(operations::run))
        .layer(Extension(api::Api(api)))
}

async fn stylesheet() -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
        .into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}
