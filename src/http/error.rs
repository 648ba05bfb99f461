//! The one error type of the HTTP layer and its RFC 9457 problem+json form.
//!
//! Services return [`AppError`]; handlers pass it through with `?`. Internal
//! failures are logged with their whole cause chain and answered with a bare
//! 500 that reveals nothing.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";
const PROBLEM_BASE: &str = "https://loan-tracker.example/problems/";

/// One invalid field of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The JSON field (or query parameter) at fault, e.g. `amount`.
    pub field: String,
    pub message: String,
}

/// An RFC 9457 problem details body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Present only for validation problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("not found: {0}")]
    NotFound(&'static str),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("request body did not arrive in time")]
    RequestTimeout,
    #[error("rate limited")]
    /// Over a rate limit of `limit` requests per minute.
    RateLimited { retry_after_secs: u64, limit: u32 },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> AppError {
        AppError::Validation(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> AppError {
        AppError::Internal(error.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn problem(&self) -> Problem {
        let status = self.status();
        let (slug, title, detail, errors) = match self {
            AppError::BadRequest(detail) => ("bad-request", "Bad request", detail.clone(), None),
            AppError::Validation(errors) => (
                "validation",
                "Validation failed",
                "One or more fields are invalid.".to_owned(),
                Some(errors.clone()),
            ),
            AppError::Unauthorized(detail) => {
                ("unauthorized", "Unauthorized", (*detail).to_owned(), None)
            }
            AppError::Forbidden(detail) => ("forbidden", "Forbidden", (*detail).to_owned(), None),
            AppError::NotFound(what) => {
                ("not-found", "Not found", format!("{what} not found."), None)
            }
            AppError::Conflict(detail) => ("conflict", "Conflict", detail.clone(), None),
            AppError::RequestTimeout => (
                "request-timeout",
                "Request timeout",
                "The request body stopped arriving; send it again, whole.".to_owned(),
                None,
            ),
            AppError::PayloadTooLarge => (
                "payload-too-large",
                "Payload too large",
                "The request body is larger than 1 MiB.".to_owned(),
                None,
            ),
            AppError::RateLimited {
                retry_after_secs, ..
            } => (
                "rate-limited",
                "Too many requests",
                format!("Rate limit exceeded; retry in {retry_after_secs} s."),
                None,
            ),
            AppError::Unavailable(detail) => {
                ("unavailable", "Service unavailable", detail.clone(), None)
            }
            AppError::Internal(_) => (
                "internal",
                "Internal server error",
                "The server failed to handle this request.".to_owned(),
                None,
            ),
        };
        Problem {
            problem_type: format!("{PROBLEM_BASE}{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            errors,
        }
    }
}

impl From<sea_orm::DbErr> for AppError {
    /// A database that cannot be reached (restarting, pool exhausted) is a
    /// 503 the client may retry; anything else is an internal error.
    fn from(error: sea_orm::DbErr) -> Self {
        if is_unreachable(&error) {
            tracing::warn!(error = %error, "database unreachable");
            return AppError::Unavailable(
                "The database is unavailable; try again shortly.".to_owned(),
            );
        }
        // A row the request refers to vanished between its checks and its
        // write (a user deleted outside the API, say): the client's view is
        // out of date, which is a conflict, not a server failure.
        if let Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(detail)) = error.sql_err() {
            tracing::warn!(%detail, "write refers to a row that no longer exists");
            return AppError::Conflict(
                "A record this request refers to no longer exists.".to_owned(),
            );
        }
        AppError::Internal(anyhow::Error::new(error).context("database error"))
    }
}

fn is_unreachable(error: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(inner)) | DbErr::Query(RuntimeErr::SqlxError(inner)) => {
            matches!(
                inner.as_ref(),
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
            ) || inner
                .as_database_error()
                // PostgreSQL shutting down or refusing connections (class 57P, 08).
                .and_then(|database| database.code())
                .is_some_and(|code| code.starts_with("57P") || code.starts_with("08"))
        }
        _ => false,
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Internal(error) = &self {
            tracing::error!(error = format!("{error:#}"), "request failed");
        }
        let problem = self.problem();
        let mut response = (self.status(), Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        if let AppError::RateLimited {
            retry_after_secs,
            limit,
        } = self
        {
            for (name, value) in [
                (header::RETRY_AFTER.as_str(), retry_after_secs.to_string()),
                ("ratelimit-limit", limit.to_string()),
                ("ratelimit-remaining", "0".to_owned()),
                ("ratelimit-reset", retry_after_secs.to_string()),
            ] {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    response.headers_mut().insert(name, value);
                }
            }
        }
        response
    }
}

/// Builds the problem response for a bare status produced outside our
/// handlers (unknown route, wrong method, timeout, panic).
pub fn problem_for_status(status: StatusCode) -> Response {
    let error = match status {
        StatusCode::NOT_FOUND => AppError::NotFound("Resource"),
        StatusCode::METHOD_NOT_ALLOWED => {
            return problem_response(
                status,
                "method-not-allowed",
                "Method not allowed",
                "This resource does not support the request method.",
            );
        }
        StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::BAD_REQUEST => {
            AppError::BadRequest("The request could not be understood.".to_owned())
        }
        StatusCode::REQUEST_TIMEOUT => AppError::RequestTimeout,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
            AppError::Unavailable("The request took too long; try again.".to_owned())
        }
        status if status.is_server_error() => {
            AppError::Internal(anyhow::anyhow!("unhandled {status}"))
        }
        status => {
            let reason = status.canonical_reason().unwrap_or("Error");
            return problem_response(status, "http-error", reason, reason);
        }
    };
    error.into_response()
}

fn problem_response(status: StatusCode, slug: &str, title: &str, detail: &str) -> Response {
    let problem = Problem {
        problem_type: format!("{PROBLEM_BASE}{slug}"),
        title: title.to_owned(),
        status: status.as_u16(),
        detail: detail.to_owned(),
        errors: None,
    };
    let mut response = (status, Json(problem)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
    );
    response
}

pub type AppResult<T> = Result<T, AppError>;

impl From<crate::policy::Forbidden> for AppError {
    fn from(refused: crate::policy::Forbidden) -> Self {
        AppError::Forbidden(refused.0)
    }
}
