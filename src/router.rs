//! The whole application assembled: every route in one place, the
//! middleware stack around them, and the OpenAPI document generated from
//! the same routes.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;
use crate::config::Config;

use crate::http::error::{AppError, FieldError, Problem};
use crate::http::{BODY_LIMIT_BYTES, docs, health, middleware, openapi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Loan Tracker",
        description = "Loan servicing: applications, approvals, repayment schedules, payments, \
            notifications and an audit trail. Money is a string with two decimals; errors are \
            RFC 9457 problem details."
    ),
    components(schemas(Problem, FieldError)),
    tags(
        (name = "auth", description = "Registration, login and tokens"),
        (name = "users", description = "Accounts, roles and profiles"),
        (name = "loans", description = "Applications, approval and repayment schedules"),
        (name = "payments", description = "Repayments, payment history and overdue installments"),
        (name = "audit", description = "The audit trail"),
        (name = "notifications", description = "What happened to a user's loans"),
        (name = "jobs", description = "Running scheduled jobs by hand"),
        (name = "accounting", description = "The books: trial balance, journal and closing"),
        (name = "decisions", description = "Four eyes: requests that wait for a second person"),
        (name = "operations", description = "Health and documentation"),
    )
)]
struct ApiDoc;

/// Every documented route, with its OpenAPI description.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::auth::handlers::router())
        .merge(crate::users::handlers::router())
        .merge(crate::loans::handlers::router())
        .merge(crate::payments::handlers::router())
        .merge(crate::jobs::handlers::router())
        .merge(crate::notifications::handlers::router())
        .merge(crate::audit::handlers::router())
        .merge(crate::reports::handlers::router())
        .merge(crate::journal::handlers::router())
        .merge(crate::decisions::handlers::router())
        .merge(health::router())
}

/// The OpenAPI document exactly as `GET /openapi.json` serves it with
/// this configuration.
pub fn openapi_document(config: &Config) -> serde_json::Value {
    let (_, document) = api_routes().split_for_parts();
    openapi::complete(document, config)
}

/// The whole application: routes, docs and middleware.
pub fn router(state: AppState) -> Router {
    let (api, document) = api_routes().split_for_parts();
    let document_json = openapi::complete(document, &state.config).to_string();
    let config = Arc::clone(&state.config);

    let hsts = config
        .hsts_max_age_secs
        .and_then(|age| HeaderValue::from_str(&format!("max-age={age}; includeSubDomains")).ok());
    let console = crate::console::router(console_api(api.clone(), &state));
    let mut app = api
        .merge(docs::router(Arc::new(document_json)))
        .merge(console)
        .route("/metrics", axum::routing::get(metrics))
        .fallback(|| async { AppError::NotFound("Resource") })
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::from_fn(middleware::problem_json_errors))
                .layer(CatchPanicLayer::new())
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    config.request_timeout,
                ))
                .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES)),
        );
    if config.database_read_url.is_some() {
        app = app.layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::remember_writes,
        ));
    }
    app = app.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        middleware::admit,
    ));
    if !config.cors_origins.is_empty() {
        app = app.layer(cors_layer(&config.cors_origins));
    }

    app.layer(
        ServiceBuilder::new()
            .layer(axum::middleware::from_fn(middleware::observe))
            .layer(axum::middleware::from_fn_with_state(
                hsts,
                middleware::security_headers,
            )),
    )
    .with_state(state)
}

/// The API as the console calls it, in process: the same routes and the
/// same problem details, without what guards the network edge (admission
/// and rate limits already counted the console's own request).
fn console_api(api: Router<AppState>, state: &AppState) -> Router {
    let mut console_api = api
        .fallback(|| async { AppError::NotFound("Resource") })
        .layer(axum::middleware::from_fn(middleware::problem_json_errors));
    if state.config.database_read_url.is_some() {
        console_api = console_api.layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::remember_writes,
        ));
    }
    console_api.with_state(state.clone())
}

/// What a worker process serves: health probes and metrics, no API.
pub fn operations_router(state: AppState) -> Router {
    let (health, _) = OpenApiRouter::new()
        .merge(health::router())
        .split_for_parts();
    health
        .route("/metrics", axum::routing::get(metrics))
        .fallback(|| async { AppError::NotFound("Resource") })
        .layer(axum::middleware::from_fn(middleware::request_id))
        .with_state(state)
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    let body = crate::metrics::render(
        &state.db,
        state.config.database_read_url.is_some(),
        state.today(),
    )
    .await;
    axum::response::IntoResponse::into_response((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    ))
}

fn cors_layer(origins: &[String]) -> CorsLayer {
    let origins: Vec<_> = origins
        .iter()
        .filter_map(|origin| origin.parse().ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static(middleware::REQUEST_ID),
        ])
        // What a browser client may read of an answer: the request id,
        // when to retry, the rate limit's state, and whether a payment was
        // an idempotent replay.
        .expose_headers([
            HeaderName::from_static(middleware::REQUEST_ID),
            axum::http::header::RETRY_AFTER,
            HeaderName::from_static("ratelimit-limit"),
            HeaderName::from_static("ratelimit-remaining"),
            HeaderName::from_static("ratelimit-reset"),
            HeaderName::from_static("idempotent-replayed"),
        ])
        .max_age(std::time::Duration::from_secs(600))
}
