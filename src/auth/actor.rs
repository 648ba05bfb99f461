//! Who is making a request: the [`Actor`] behind a bearer token, and the
//! request's [`RequestMeta`] (client IP, request id) for the audit trail.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use sea_orm::EntityTrait;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::tokens::AccessClaims;
use crate::cache::CacheKind;
use crate::config::IpRange;
use crate::db::entities::{Role, user};
use crate::http::error::{AppError, AppResult};

/// An authenticated user. Taking it as a handler argument makes the route
/// require a valid access token; list it before any body extractor so a
/// missing token is a 401 before the body is even read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Actor {
    pub id: Uuid,
    pub role: Role,
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
        // The role comes from the database (through the cache, which a
        // role change invalidates), not the token: a demotion takes effect
        // at once, and a deleted user's tokens stop working.
        let actor = *state
            .cache
            .get_or_load(CacheKind::User, claims.sub, || async {
                let user = user::Entity::find_by_id(claims.sub)
                    .one(state.db.fresh())
                    .await?;
                Ok::<_, AppError>(user.map(|user| Actor {
                    id: user.id,
                    role: user.role,
                }))
            })
            .await?
            .ok_or(AppError::Unauthorized(INVALID_TOKEN))?;
        parts.extensions.insert(actor);
        Ok(actor)
    }
}

impl crate::cache::Cacheable for Actor {
    fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn decode(text: &str) -> Option<Actor> {
        serde_json::from_str(text).ok()
    }
}

impl Actor {
    pub fn is_staff(&self) -> bool {
        self.role.is_staff()
    }

    /// ADMIN or MANAGER, else 403.
    pub fn require_staff(&self) -> AppResult<()> {
        if self.is_staff() {
            Ok(())
        } else {
            Err(AppError::Forbidden(
                "This action needs the ADMIN or MANAGER role.",
            ))
        }
    }

    /// ADMIN, else 403.
    pub fn require_admin(&self) -> AppResult<()> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(AppError::Forbidden("This action needs the ADMIN role."))
        }
    }

    /// For per-user paths (`/users/:id`, `/loans/user/:id`, …): the user
    /// themselves or staff, else 403.
    pub fn require_self_or_staff(&self, user_id: Uuid) -> AppResult<()> {
        if self.id == user_id || self.is_staff() {
            Ok(())
        } else {
            Err(AppError::Forbidden("You may only access your own records."))
        }
    }

    /// For records addressed by their own id: whether this actor may see a
    /// record owned by `owner_id`. Callers answer 404 when not, so that a
    /// user never learns whether someone else's record exists.
    pub fn can_see(&self, owner_id: Uuid) -> bool {
        self.id == owner_id || self.is_staff()
    }
}

/// An actor with the ADMIN role; anyone else is a 403 before the request
/// body is even read.
#[derive(Debug, Clone, Copy)]
pub struct AdminActor(pub Actor);

impl FromRequestParts<AppState> for AdminActor {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let actor = Actor::from_request_parts(parts, state).await?;
        actor.require_admin()?;
        Ok(AdminActor(actor))
    }
}

/// An actor with the ADMIN or MANAGER role; anyone else is a 403 before
/// the request body is even read.
#[derive(Debug, Clone, Copy)]
pub struct StaffActor(pub Actor);

impl FromRequestParts<AppState> for StaffActor {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let actor = Actor::from_request_parts(parts, state).await?;
        actor.require_staff()?;
        Ok(StaffActor(actor))
    }
}

/// Facts about the request recorded in the audit trail.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub request_id: Option<String>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

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

/// The client's address: the TCP peer, or, when the peer is a trusted
/// proxy, the right-most address in `X-Forwarded-For` that is not itself a
/// trusted proxy (entries further left can be forged by the client).
pub fn client_ip(parts: &Parts, trusted_proxies: &[IpRange]) -> Option<IpAddr> {
    client_ip_of(&parts.extensions, &parts.headers, trusted_proxies)
}

pub fn client_ip_of(
    extensions: &axum::http::Extensions,
    headers: &axum::http::HeaderMap,
    trusted_proxies: &[IpRange],
) -> Option<IpAddr> {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())?;
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|range| range.contains(ip));
    if !trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|item| item.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !trusted(ip))
            .unwrap_or(peer),
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(peer: &str, forwarded: Option<&str>) -> Parts {
        let mut builder = Request::builder().uri("/");
        if let Some(forwarded) = forwarded {
            builder = builder.header("x-forwarded-for", forwarded);
        }
        let (mut parts, ()) = builder.body(()).expect("request").into_parts();
        let peer: SocketAddr = peer.parse().expect("address");
        parts.extensions.insert(ConnectInfo(peer));
        parts
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let proxies: [IpRange; 1] = ["10.0.0.0/24".parse().expect("range")];
        let forged = parts("203.0.113.9:5000", Some("1.2.3.4"));
        assert_eq!(client_ip(&forged, &proxies), "203.0.113.9".parse().ok());
        let proxied = parts("10.0.0.1:5000", Some("6.6.6.6, 198.51.100.7, 10.0.0.2"));
        assert_eq!(client_ip(&proxied, &proxies), "198.51.100.7".parse().ok());
        let bare = parts("10.0.0.1:5000", None);
        assert_eq!(client_ip(&bare, &proxies), Some(proxy));
    }
}
