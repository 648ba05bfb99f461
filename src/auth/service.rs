//! Registration, login, refresh-token rotation and logout.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::tokens::{hash_refresh_token, new_refresh_token};
use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::audit::{self, AuditAction, AuditEntry, EntityType};
use crate::auth::actor::Actor;
use crate::db::entities::{Role, refresh_session, user};
use crate::users::domain::{Email, NewPassword, UserError, Username};
use crate::users::service::{self as users, NewUser, ProfileInput};
use crate::users::views::UserView;

/// The answer to register, login and refresh.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthResponse {
    pub user: UserView,
    /// JWT (HS256) for `Authorization: Bearer …`.
    pub access_token: String,
    /// Opaque, single use: trade it at `/auth/refresh` for a new pair.
    pub refresh_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// A validated registration.
#[derive(Debug)]
pub struct Registration {
    pub email: Email,
    pub username: Username,
    pub password: NewPassword,
    pub profile: Option<ProfileInput>,
}

/// How a login names its user.
#[derive(Debug, Clone)]
pub enum LoginIdentifier {
    Email(String),
    Username(String),
}

/// Why an authentication was refused, or failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong email, wrong username and wrong password alike.
    #[error("invalid credentials")]
    BadCredentials,
    #[error("the refresh token is invalid, expired or revoked")]
    BadRefreshToken,
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
    /// Hashing a password or signing a token failed.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub async fn register(
    state: &AppState,
    meta: &RequestMeta,
    registration: Registration,
) -> Result<AuthResponse, AuthError> {
    let password_hash = state.passwords.hash(registration.password.secret()).await?;
    let now = state.now();
    let transaction = state.db.begin_write().await?;
    let (user, profile) = users::create_user(
        &transaction,
        NewUser {
            email: registration.email,
            username: registration.username,
            password_hash,
            role: Role::User,
            profile: registration.profile,
        },
        now,
    )
    .await?;
    audit::record(
        &transaction,
        AuditEntry::new(AuditAction::UserRegistered, Some(user.id))
            .entity(EntityType::User, user.id)
            .details(json!({ "role": user.role.as_str() })),
        Some(meta),
        now,
    )
    .await?;
    let refresh_token = start_session(&transaction, state, user.id, None, meta, now).await?;
    transaction.commit().await?;
    let role = user.role;
    let view = UserView::new(user, profile);
    respond(state, view, role, refresh_token, now)
}

pub async fn login(
    state: &AppState,
    meta: &RequestMeta,
    identifier: LoginIdentifier,
    password: SecretString,
) -> Result<AuthResponse, AuthError> {
    let found = find_by_identifier(&identifier, &state.db.write).await?;
    // Unknown users are verified against a dummy hash: the answer and its
    // timing are the same as for a wrong password.
    let verified = state
        .passwords
        .verify(&password, found.as_ref().map(|u| u.password_hash.as_str()))
        .await?;
    // A hash stored by an earlier version with other parameters is
    // replaced while the password is at hand (before the transaction, so
    // no connection waits on the hashing).
    let upgraded_hash = match &found {
        Some(user) if verified && !state.passwords.is_current(&user.password_hash) => {
            Some(state.passwords.hash(&password).await?)
        }
        _ => None,
    };
    let now = state.now();
    let transaction = state.db.begin_write().await?;
    let user = match found {
        Some(user) if verified => user,
        other => {
            let kind = match identifier {
                LoginIdentifier::Email(_) => "email",
                LoginIdentifier::Username(_) => "username",
            };
            let mut failure = AuditEntry::new(AuditAction::LoginFailed, None)
                .details(json!({ "identifier": kind }));
            if let Some(named) = other {
                failure = failure.entity(EntityType::User, named.id);
            }
            audit::record(&transaction, failure, Some(meta), now).await?;
            transaction.commit().await?;
            return Err(AuthError::BadCredentials);
        }
    };
    if let Some(hash) = upgraded_hash {
        user::Entity::update_many()
            .col_expr(
                user::Column::PasswordHash,
                sea_orm::sea_query::Expr::value(hash),
            )
            .filter(user::Column::Id.eq(user.id))
            .exec(&transaction)
            .await?;
    }
    audit::record(
        &transaction,
        AuditEntry::new(AuditAction::LoginSucceeded, Some(user.id))
            .entity(EntityType::User, user.id),
        Some(meta),
        now,
    )
    .await?;
    let refresh_token = start_session(&transaction, state, user.id, None, meta, now).await?;
    let view = users::user_view(&transaction, user.id).await?;
    transaction.commit().await?;
    respond(state, view, user.role, refresh_token, now)
}

async fn find_by_identifier(
    identifier: &LoginIdentifier,
    connection: &impl ConnectionTrait,
) -> Result<Option<user::Model>, sea_orm::DbErr> {
    let filter = match identifier {
        LoginIdentifier::Email(email) => user::Column::Email.eq(email.trim().to_lowercase()),
        LoginIdentifier::Username(name) => user::Column::UsernameKey.eq(name.to_ascii_lowercase()),
    };
    user::Entity::find().filter(filter).one(connection).await
}

/// Trades a refresh token for a new pair. The old token is spent; if a
/// spent token is ever presented again, someone holds a copy of it, so the
/// whole family (every token descended from the same login) is revoked.
pub async fn refresh(
    state: &AppState,
    meta: &RequestMeta,
    token: &str,
) -> Result<AuthResponse, AuthError> {
    let now = state.now();
    let transaction = state.db.begin_write().await?;
    let session = refresh_session::Entity::find()
        .filter(refresh_session::Column::TokenHash.eq(hash_refresh_token(token)))
        .lock_exclusive()
        .one(&transaction)
        .await?
        .ok_or(AuthError::BadRefreshToken)?;
    if session.revoked_at.is_some() {
        return Err(AuthError::BadRefreshToken);
    }
    if session.rotated_at.is_some() {
        revoke_family(&transaction, session.family_id, "reuse", now).await?;
        audit::record(
            &transaction,
            AuditEntry::new(AuditAction::RefreshReuseDetected, Some(session.user_id))
                .entity(EntityType::User, session.user_id)
                .details(json!({ "family": session.family_id })),
            Some(meta),
            now,
        )
        .await?;
        transaction.commit().await?;
        tracing::warn!(user_id = %session.user_id, "refresh token reuse detected; session family revoked");
        return Err(AuthError::BadRefreshToken);
    }
    if session.expires_at <= now {
        return Err(AuthError::BadRefreshToken);
    }
    refresh_session::Entity::update_many()
        .col_expr(
            refresh_session::Column::RotatedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(refresh_session::Column::Id.eq(session.id))
        .exec(&transaction)
        .await?;
    let refresh_token = start_session(
        &transaction,
        state,
        session.user_id,
        Some(session.family_id),
        meta,
        now,
    )
    .await?;
    let view = users::user_view(&transaction, session.user_id).await?;
    transaction.commit().await?;
    let role = view.role;
    respond(state, view, role, refresh_token, now)
}

/// Revokes the login session the refresh token belongs to. Unknown or
/// already revoked tokens are accepted silently: logging out twice is fine.
pub async fn logout(state: &AppState, meta: &RequestMeta, token: &str) -> Result<(), AuthError> {
    let now = state.now();
    let transaction = state.db.begin_write().await?;
    let session = refresh_session::Entity::find()
        .filter(refresh_session::Column::TokenHash.eq(hash_refresh_token(token)))
        .lock_exclusive()
        .one(&transaction)
        .await?;
    if let Some(session) = session.filter(|s| s.revoked_at.is_none() && s.rotated_at.is_none()) {
        revoke_family(&transaction, session.family_id, "logout", now).await?;
        audit::record(
            &transaction,
            AuditEntry::new(AuditAction::Logout, Some(session.user_id))
                .entity(EntityType::User, session.user_id),
            Some(meta),
            now,
        )
        .await?;
    }
    transaction.commit().await?;
    Ok(())
}

async fn revoke_family(
    connection: &impl ConnectionTrait,
    family_id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    refresh_session::Entity::update_many()
        .col_expr(
            refresh_session::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .col_expr(
            refresh_session::Column::RevokedReason,
            sea_orm::sea_query::Expr::value(reason),
        )
        .filter(refresh_session::Column::FamilyId.eq(family_id))
        .filter(refresh_session::Column::RevokedAt.is_null())
        .exec(connection)
        .await?;
    Ok(())
}

/// Stores a new refresh token (a new family unless `family_id` is given)
/// and returns the token itself, which is never stored.
async fn start_session(
    connection: &impl ConnectionTrait,
    state: &AppState,
    user_id: Uuid,
    family_id: Option<Uuid>,
    meta: &RequestMeta,
    now: DateTime<Utc>,
) -> Result<String, AuthError> {
    let (token, token_hash) = new_refresh_token();
    let ttl = chrono::Duration::from_std(state.tokens.refresh_ttl).map_err(anyhow::Error::from)?;
    let row = refresh_session::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        family_id: Set(family_id.unwrap_or_else(Uuid::now_v7)),
        token_hash: Set(token_hash),
        expires_at: Set(now + ttl),
        rotated_at: Set(None),
        revoked_at: Set(None),
        revoked_reason: Set(None),
        ip: Set(meta.ip.map(|ip| ip.to_string())),
        user_agent: Set(meta.user_agent.clone()),
        created_at: Set(now),
    };
    refresh_session::Entity::insert(row)
        .exec_without_returning(connection)
        .await?;
    Ok(token)
}

fn respond(
    state: &AppState,
    user: UserView,
    role: Role,
    refresh_token: String,
    now: DateTime<Utc>,
) -> Result<AuthResponse, AuthError> {
    let access_token = state.tokens.issue_access(user.id, role, now)?;
    Ok(AuthResponse {
        user,
        access_token,
        refresh_token,
        token_type: "Bearer",
        expires_in: state.tokens.access_ttl.as_secs(),
    })
}

/// Creates an administrator unless the email is already registered.
/// Returns whether one was created. Used at start-up (`ADMIN_*`) and by
/// `loan-tracker create-admin`.
pub async fn ensure_admin(
    state: &AppState,
    email: Email,
    username: Username,
    password: NewPassword,
) -> Result<bool, AuthError> {
    let exists = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(&state.db.write)
        .await?
        .is_some();
    if exists {
        return Ok(false);
    }
    let password_hash = state.passwords.hash(password.secret()).await?;
    let now = state.now();
    let transaction = state.db.begin_write().await?;
    let created = users::create_user(
        &transaction,
        NewUser {
            email: email.clone(),
            username,
            password_hash,
            role: Role::Admin,
            profile: None,
        },
        now,
    )
    .await;
    let (admin, _) = match created {
        Ok(created) => created,
        // Another instance starting at the same moment may have created it
        // first; anything else (a taken username) is a real conflict.
        Err(
            taken @ (UserError::EmailTaken
            | UserError::UsernameTaken
            | UserError::EmailOrUsernameTaken),
        ) => {
            drop(transaction);
            let exists = user::Entity::find()
                .filter(user::Column::Email.eq(email.as_str()))
                .one(&state.db.write)
                .await?
                .is_some();
            return if exists { Ok(false) } else { Err(taken.into()) };
        }
        Err(error) => return Err(error.into()),
    };
    audit::record(
        &transaction,
        AuditEntry::new(AuditAction::UserRegistered, None)
            .entity(EntityType::User, admin.id)
            .details(json!({ "role": "ADMIN", "source": "bootstrap" })),
        None,
        now,
    )
    .await?;
    transaction.commit().await?;
    Ok(true)
}

/// Who holds a refresh token, while its session is live (not revoked,
/// rotated or expired): how the console, whose cookie holds the token of
/// its sign-in, knows who is asking. `None` for any other token.
pub async fn session_holder(
    connection: &impl ConnectionTrait,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<SessionHolder>, sea_orm::DbErr> {
    let Some(session) = refresh_session::Entity::find()
        .filter(refresh_session::Column::TokenHash.eq(hash_refresh_token(token)))
        .one(connection)
        .await?
    else {
        return Ok(None);
    };
    if session.revoked_at.is_some() || session.rotated_at.is_some() || session.expires_at <= now {
        return Ok(None);
    }
    Ok(user::Entity::find_by_id(session.user_id)
        .one(connection)
        .await?
        .map(|user| SessionHolder {
            actor: Actor {
                id: user.id,
                role: user.role,
            },
            username: user.username,
        }))
}

/// The user behind a live session.
#[derive(Debug, Clone)]
pub struct SessionHolder {
    pub actor: Actor,
    pub username: String,
}
