//! The extractors that turn a request into what services take: the
//! [`Actor`] behind its bearer token, a [`Permit`] for a role rule, and the
//! [`RequestMeta`] its audit entries record.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use sea_orm::EntityTrait;

use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::auth::actor::Actor;
use crate::auth::tokens::AccessClaims;
use crate::cache::CacheKind;
use crate::db::entities::user;
use crate::http::client_address::client_ip;
use crate::http::error::AppError;
use crate::policy::{Permit, Rule};

impl FromRequestParts<AppState> for RequestMeta {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header_text = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(|text| text.chars().take(256).collect::<String>())
        };
        Ok(RequestMeta {
            request_id: header_text("x-request-id"),
            ip: client_ip(parts, &state.config.trusted_proxies),
            user_agent: header_text("user-agent"),
        })
    }
}

impl<R: Rule> FromRequestParts<AppState> for Permit<R> {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let actor = Actor::from_request_parts(parts, state).await?;
        Ok(Permit::check(actor)?)
    }
}

const INVALID_TOKEN: &str = "A valid bearer access token is required.";

impl FromRequestParts<AppState> for Actor {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(actor) = parts.extensions.get::<Actor>() {
            return Ok(*actor);
        }
        let claims = verified_claims(&parts.extensions, &parts.headers, state)
            .ok_or(AppError::Unauthorized(INVALID_TOKEN))?;
        // The role comes from the database, not the token: a demotion takes
        // effect at once, and a deleted user's tokens stop working at once.
        // On PostgreSQL through the cache, which every change to a user's
        // row invalidates (see `user_changes`); on SQLite, whose in-process
        // lookup costs microseconds and which has no change channel, and
        // whenever the channel is down, read every time.
        let load = || async {
            let user = user::Entity::find_by_id(claims.sub)
                .one(state.db.fresh())
                .await?;
            Ok::<_, AppError>(user.map(|user| Actor {
                id: user.id,
                role: user.role,
            }))
        };
        // Cached only while this instance hears every change to a user
        // row (PostgreSQL's channel is up): a change it might miss would
        // leave a stale role or a deleted user cached.
        let cached = state.db.is_postgres()
            && state
                .user_changes_heard
                .load(std::sync::atomic::Ordering::Acquire);
        let actor = if cached {
            state
                .cache
                .get_or_load(CacheKind::User, claims.sub, load)
                .await?
                .as_deref()
                .copied()
        } else {
            load().await?
        }
        .ok_or(AppError::Unauthorized(INVALID_TOKEN))?;
        parts.extensions.insert(actor);
        Ok(actor)
    }
}

/// The claims of the request's access token if it is valid: as verified
/// earlier in this request, or verified now.
pub fn verified_claims(
    extensions: &axum::http::Extensions,
    headers: &axum::http::HeaderMap,
    state: &AppState,
) -> Option<AccessClaims> {
    if let Some(claims) = extensions.get::<AccessClaims>() {
        return Some(claims.clone());
    }
    let token = bearer_token_of(headers)?;
    state.tokens.verify_access(token, state.now()).ok()
}

/// The bearer token of a request, if it carries one.
pub fn bearer_token_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
