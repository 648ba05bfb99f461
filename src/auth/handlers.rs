//! HTTP handlers for `/auth`.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::service::{self, AuthResponse, LoginIdentifier, Registration};
use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::http::client_address::client_ip;
use crate::http::error::{AppError, AppResult};
use crate::http::json::{Field, JsonBody, Validator, accept};
use crate::users::domain::{self, Email, NewPassword, Username};
use crate::users::service::ProfileInput;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
}

/// Counts one login or registration attempt against the client's
/// per-IP budget; over budget the request is a 429 before any work.
struct AuthAttempt;

impl FromRequestParts<AppState> for AuthAttempt {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = client_ip(parts, &state.config.trusted_proxies)
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let decision = state.auth_limiter.check(&key).await;
        if decision.allowed {
            Ok(AuthAttempt)
        } else {
            Err(AppError::RateLimited {
                retry_after_secs: decision.reset_after_secs,
                limit: decision.limit,
            })
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegisterRequest {
    #[serde(default)]
    #[schema(value_type = String, format = Email, required = true)]
    email: Field<String>,
    /// 3–32 characters of letters, digits, `_`, `.`, `-`.
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 3, max_length = 32, pattern = "^[A-Za-z0-9_.-]{3,32}$")]
    username: Field<String>,
    #[serde(default)]
    #[schema(value_type = String, format = Password, required = true, min_length = 8, max_length = 128)]
    password: Field<String>,
    /// Given together with `lastName`, creates the profile.
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 100, pattern = r"\S")]
    first_name: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 100, pattern = r"\S")]
    last_name: Field<String>,
}

/// Creates a `USER` account and signs it in.
#[utoipa::path(post, path = "/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered and signed in", body = AuthResponse),
        (status = 409, description = "Email or username already registered", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn register(
    _attempt: AuthAttempt,
    State(state): State<AppState>,
    meta: RequestMeta,
    JsonBody(body): JsonBody<RegisterRequest>,
) -> AppResult<(StatusCode, Json<AuthResponse>)> {
    let mut validator = Validator::new();
    let email = validator.required("email", body.email, Email::parse);
    let username = validator.required("username", body.username, Username::parse);
    let password = validator.required("password", body.password, NewPassword::parse);
    let first_name = validator.optional("firstName", body.first_name, domain::person_name);
    let last_name = validator.optional("lastName", body.last_name, domain::person_name);
    let profile = match (first_name, last_name) {
        (Some(Some(first_name)), Some(Some(last_name))) => Some(ProfileInput {
            first_name,
            last_name,
            phone_number: None,
            address: None,
            date_of_birth: None,
        }),
        (Some(Some(_)), Some(None)) => {
            validator.error("lastName", "is required together with firstName");
            None
        }
        (Some(None), Some(Some(_))) => {
            validator.error("firstName", "is required together with lastName");
            None
        }
        _ => None,
    };
    let registration = validator.finish(|| {
        Some(Registration {
            email: email?,
            username: username?,
            password: password?,
            profile,
        })
    })?;
    let response = service::register(&state, &meta, registration).await?;
    Ok((StatusCode::CREATED, Json(response)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoginRequest {
    /// Either `email` or `username`.
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1)]
    email: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1)]
    username: Field<String>,
    #[serde(default)]
    #[schema(value_type = String, format = Password, required = true, min_length = 1)]
    password: Field<String>,
}

/// Signs in with email or username. Unknown user and wrong password get
/// the same answer.
#[utoipa::path(post, path = "/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = AuthResponse),
        (status = 401, description = "Invalid credentials", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn login(
    _attempt: AuthAttempt,
    State(state): State<AppState>,
    meta: RequestMeta,
    JsonBody(body): JsonBody<LoginRequest>,
) -> AppResult<Json<AuthResponse>> {
    let mut validator = Validator::new();
    let email = validator.optional("email", body.email, accept);
    let username = validator.optional("username", body.username, accept);
    let password = validator.required("password", body.password, |raw: String| {
        if raw.is_empty() {
            Err("is required")
        } else {
            Ok(SecretString::from(raw))
        }
    });
    let identifier = match (email, username) {
        (Some(Some(email)), Some(None)) => Some(LoginIdentifier::Email(email)),
        (Some(None), Some(Some(username))) => Some(LoginIdentifier::Username(username)),
        (Some(Some(_)), Some(Some(_))) => {
            validator.error("username", "give either email or username, not both");
            None
        }
        (Some(None), Some(None)) => {
            validator.error("email", "email or username is required");
            None
        }
        _ => None,
    };
    let (identifier, password) = validator.finish(|| Some((identifier?, password?)))?;
    Ok(Json(
        service::login(&state, &meta, identifier, password).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RefreshRequest {
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 512)]
    refresh_token: Field<String>,
}

fn refresh_token(body: RefreshRequest) -> AppResult<String> {
    let mut validator = Validator::new();
    let token = validator.required("refreshToken", body.refresh_token, |raw: String| {
        if raw.is_empty() || raw.len() > 512 {
            Err("must be a refresh token")
        } else {
            Ok(raw)
        }
    });
    validator.finish(|| token)
}

/// Trades a refresh token for a new pair (the old one is spent).
#[utoipa::path(post, path = "/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair", body = AuthResponse),
        (status = 401, description = "Invalid, expired, revoked or reused refresh token", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn refresh(
    State(state): State<AppState>,
    meta: RequestMeta,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> AppResult<Json<AuthResponse>> {
    let token = refresh_token(body)?;
    Ok(Json(service::refresh(&state, &meta, &token).await?))
}

/// Revokes the session of a refresh token.
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    request_body = RefreshRequest,
    responses((status = 204, description = "Signed out")))]
async fn logout(
    State(state): State<AppState>,
    meta: RequestMeta,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> AppResult<StatusCode> {
    let token = refresh_token(body)?;
    service::logout(&state, &meta, &token).await?;
    Ok(StatusCode::NO_CONTENT)
}
