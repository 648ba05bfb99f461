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
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, RefOr, ResponseBuilder};
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;
use crate::config::Config;

use crate::http::error::{self, AppError, FieldError, Problem};
use crate::http::{BODY_LIMIT_BYTES, docs, format, health, middleware};

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
pub fn openapi_document(config: &Config) -> utoipa::openapi::OpenApi {
    let (_, mut document) = api_routes().split_for_parts();
    complete_document(&mut document, config);
    document
}

/// The whole application: routes, docs and middleware.
pub fn router(state: AppState) -> Router {
    let (api, mut document) = api_routes().split_for_parts();
    complete_document(&mut document, &state.config);
    let document_json = serde_json::to_string(&document).unwrap_or_else(|error| {
        tracing::error!(%error, "cannot serialise the OpenAPI document");
        "{}".to_owned()
    });
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
        .expose_headers([
            HeaderName::from_static(middleware::REQUEST_ID),
            axum::http::header::RETRY_AFTER,
        ])
        .max_age(std::time::Duration::from_secs(600))
}

/// Adds what every operation shares: the bearer security scheme, and the
/// problem+json responses that middleware and extractors can produce; and
/// what depends on the configuration: the bounds of amounts in requests.
fn complete_document(document: &mut utoipa::openapi::OpenApi, config: &Config) {
    let components = document.components.get_or_insert_with(Default::default);
    components.schemas.insert(
        "LoanAmountInput".to_owned(),
        format::amount_input_schema(config.loan_min_amount, config.loan_max_amount),
    );
    components.schemas.insert(
        "PaymentAmountInput".to_owned(),
        format::amount_input_schema(crate::money::Money::from_minor(1), config.loan_max_amount),
    );
    components.add_security_scheme(
        "bearerAuth",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    for path_item in document.paths.paths.values_mut() {
        let operations = [
            path_item.get.as_mut(),
            path_item.post.as_mut(),
            path_item.put.as_mut(),
            path_item.patch.as_mut(),
            path_item.delete.as_mut(),
        ];
        for operation in operations.into_iter().flatten() {
            add_problem_responses(operation);
        }
    }
}

/// The problem responses an operation can give besides its own: those of
/// the body and query parsing, the token and role checks, the rate limit
/// and the database being away.
fn add_problem_responses(operation: &mut utoipa::openapi::path::Operation) {
    use utoipa::openapi::path::ParameterIn;
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_body = operation.request_body.is_some();
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    let has_parameters_in = |place: ParameterIn| {
        parameters
            .iter()
            .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == place))
    };
    let (has_path_params, has_query_params) = (
        has_parameters_in(ParameterIn::Path),
        has_parameters_in(ParameterIn::Query),
    );
    let responses = &mut operation.responses.responses;
    let mut add = |status: &str, description: &str| {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| problem_response(description));
    };
    if has_body {
        add(
            "400",
            "Malformed JSON, a non-JSON content type or unknown fields",
        );
        add("413", "Request body larger than 1 MiB");
    }
    if has_body || has_query_params {
        add("422", "Invalid fields; `errors` names each one");
    }
    if secured {
        add("401", "Missing, invalid or expired access token");
    }
    if secured && (has_path_params || has_query_params || has_body) {
        add("403", "The caller's role does not allow this");
    }
    if has_path_params {
        add("404", "No such record, or not one the caller may see");
    }
    add("429", "Rate limited; see Retry-After");
    add("503", "Temporarily unavailable");
    add("default", "An error, as problem details");
}

/// A problem+json response described as `description`.
fn problem_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                error::PROBLEM_CONTENT_TYPE,
                Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "Problem",
                )))),
            )
            .build(),
    )
}
