//! Users, roles and profiles: the rules and the transactions.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::json;
use uuid::Uuid;

use super::domain::UserError;
use super::domain::{Email, Username};
use super::views::{ProfileView, UserView};
use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::audit::{self, AuditAction, AuditEntry, EntityType};
use crate::auth::actor::Actor;
use crate::cache::CacheKind;
use crate::db::entities::{Role, profile, user};
use crate::db::is_unique_violation;
use crate::http::pagination::{Page, PageRequest};
use crate::policy::{self, ChangeRoles, Permit, ReadAllUsers};

/// The fields of a profile, already validated.
#[derive(Debug, Clone)]
pub struct ProfileInput {
    pub first_name: String,
    pub last_name: String,
    pub phone_number: Option<String>,
    pub address: Option<String>,
    pub date_of_birth: Option<NaiveDate>,
}

/// An account about to be created.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: Email,
    pub username: Username,
    pub password_hash: String,
    pub role: Role,
    pub profile: Option<ProfileInput>,
}

/// Inserts a user (and profile) on `connection`, normally a transaction
/// that also writes the matching audit entry. Duplicate email or username
/// (ignoring case) is a 409.
pub async fn create_user(
    connection: &impl ConnectionTrait,
    new_user: NewUser,
    now: DateTime<Utc>,
) -> Result<(user::Model, Option<profile::Model>), UserError> {
    let clashes = user::Entity::find()
        .filter(
            Condition::any()
                .add(user::Column::Email.eq(new_user.email.as_str()))
                .add(user::Column::UsernameKey.eq(new_user.username.key())),
        )
        .all(connection)
        .await?;
    if clashes.iter().any(|u| u.email == new_user.email.as_str()) {
        return Err(UserError::EmailTaken);
    }
    if !clashes.is_empty() {
        return Err(UserError::UsernameTaken);
    }
    let id = Uuid::now_v7();
    let row = user::ActiveModel {
        id: Set(id),
        email: Set(new_user.email.as_str().to_owned()),
        username: Set(new_user.username.as_str().to_owned()),
        username_key: Set(new_user.username.key()),
        password_hash: Set(new_user.password_hash),
        role: Set(new_user.role),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let created = user::Entity::insert(row)
        .exec_with_returning(connection)
        .await
        .map_err(|error| {
            // Lost a race with a concurrent registration of the same name.
            if is_unique_violation(&error) {
                UserError::EmailOrUsernameTaken
            } else {
                error.into()
            }
        })?;
    let profile = match new_user.profile {
        Some(input) => Some(
            profile::Entity::insert(profile_row(id, input, now))
                .exec_with_returning(connection)
                .await?,
        ),
        None => None,
    };
    Ok((created, profile))
}

fn profile_row(user_id: Uuid, input: ProfileInput, now: DateTime<Utc>) -> profile::ActiveModel {
    profile::ActiveModel {
        user_id: Set(user_id),
        first_name: Set(input.first_name),
        last_name: Set(input.last_name),
        phone_number: Set(input.phone_number),
        address: Set(input.address),
        date_of_birth: Set(input.date_of_birth),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

/// User `user_id` with their profile (the user themselves, ADMIN,
/// MANAGER), or 404.
pub async fn user_for(
    state: &AppState,
    actor: Actor,
    user_id: Uuid,
) -> Result<UserView, UserError> {
    policy::require_own_or_staff(actor, user_id)?;
    user_view(state.db.fresh(), user_id).await
}

/// User `user_id`'s profile (the user themselves, ADMIN, MANAGER), or 404
/// when they have none yet.
pub async fn profile_for(
    state: &AppState,
    actor: Actor,
    user_id: Uuid,
) -> Result<ProfileView, UserError> {
    policy::require_own_or_staff(actor, user_id)?;
    profile_view(state.db.fresh(), user_id).await
}

/// The user with their profile, or 404.
pub async fn user_view(
    connection: &impl ConnectionTrait,
    user_id: Uuid,
) -> Result<UserView, UserError> {
    let user = user::Entity::find_by_id(user_id)
        .one(connection)
        .await?
        .ok_or(UserError::UserNotFound)?;
    let profile = profile::Entity::find_by_id(user_id).one(connection).await?;
    Ok(UserView::new(user, profile))
}

/// Which users a list holds.
#[derive(Debug, Default)]
pub struct UserFilter {
    pub role: Option<Role>,
    pub email: Option<Email>,
}

/// Users newest first, optionally of one role or with one email. Profiles
/// come in one query for the whole page.
pub async fn list_users(
    state: &AppState,
    permit: Permit<ReadAllUsers>,
    UserFilter { role, email }: UserFilter,
    page: &PageRequest,
    after: Option<Uuid>,
) -> Result<Page<UserView>, UserError> {
    let connection = state.list_reader(permit.actor().id).await;
    let mut query = user::Entity::find()
        .order_by_desc(user::Column::Id)
        .limit(page.fetch_limit());
    if let Some(role) = role {
        query = query.filter(user::Column::Role.eq(role));
    }
    if let Some(email) = email {
        query = query.filter(user::Column::Email.eq(email.as_str()));
    }
    if let Some(after) = after {
        query = query.filter(user::Column::Id.lt(after));
    }
    let users = query.all(connection).await?;
    let ids: Vec<Uuid> = users.iter().map(|u| u.id).collect();
    let mut profiles: HashMap<Uuid, profile::Model> = profile::Entity::find()
        .filter(profile::Column::UserId.is_in(ids))
        .all(connection)
        .await?
        .into_iter()
        .map(|p| (p.user_id, p))
        .collect();
    Ok(Page::from_rows(
        users,
        page,
        |u| vec![u.id.to_string()],
        |u| {
            let profile = profiles.remove(&u.id);
            UserView::new(u, profile)
        },
    ))
}

/// Gives `target_id` a new role. Only an admin may, and the last admin
/// cannot be demoted — not even by two admins demoting each other at once:
/// every admin row is locked before they are counted.
pub async fn change_role(
    state: &AppState,
    permit: Permit<ChangeRoles>,
    meta: &RequestMeta,
    target_id: Uuid,
    new_role: Role,
) -> Result<UserView, UserError> {
    let actor = permit.actor();
    let now = state.now();
    let transaction = state.db.begin_write().await?;
    // Lock the target and every admin in one statement, in id order, so
    // that two role changes can neither deadlock nor both remove an admin.
    let locked = user::Entity::find()
        .filter(
            Condition::any()
                .add(user::Column::Id.eq(target_id))
                .add(user::Column::Role.eq(Role::Admin)),
        )
        .order_by_asc(user::Column::Id)
        .lock_exclusive()
        .all(&transaction)
        .await?;
    let target = locked
        .iter()
        .find(|u| u.id == target_id)
        .cloned()
        .ok_or(UserError::UserNotFound)?;
    if target.role == Role::Admin && new_role != Role::Admin {
        let admins = locked.iter().filter(|u| u.role == Role::Admin).count();
        if admins <= 1 {
            return Err(UserError::LastAdmin);
        }
    }
    let old_role = target.role;
    if old_role != new_role {
        user::Entity::update_many()
            .col_expr(user::Column::Role, new_role.as_str().into())
            .col_expr(user::Column::UpdatedAt, now.into())
            .filter(user::Column::Id.eq(target_id))
            .exec(&transaction)
            .await?;
        audit::record(
            &transaction,
            AuditEntry::new(AuditAction::RoleChanged, Some(actor.id))
                .entity(EntityType::User, target_id)
                .details(json!({ "from": old_role.as_str(), "to": new_role.as_str() })),
            Some(meta),
            now,
        )
        .await?;
    }
    let view = user_view(&transaction, target_id).await?;
    transaction.commit().await?;
    state.cache.invalidate(CacheKind::User, target_id).await;
    Ok(view)
}

/// Creates or replaces the actor's own profile.
pub async fn put_profile(
    state: &AppState,
    actor: Actor,
    meta: &RequestMeta,
    input: ProfileInput,
) -> Result<ProfileView, UserError> {
    let now = state.now();
    let transaction = state.db.begin_write().await?;
    let existed = profile::Entity::find_by_id(actor.id)
        .one(&transaction)
        .await?
        .is_some();
    profile::Entity::insert(profile_row(actor.id, input, now))
        .on_conflict(
            OnConflict::column(profile::Column::UserId)
                .update_columns([
                    profile::Column::FirstName,
                    profile::Column::LastName,
                    profile::Column::PhoneNumber,
                    profile::Column::Address,
                    profile::Column::DateOfBirth,
                    profile::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&transaction)
        .await?;
    audit::record(
        &transaction,
        AuditEntry::new(AuditAction::ProfileUpdated, Some(actor.id))
            .entity(EntityType::User, actor.id)
            .details(json!({ "created": !existed })),
        Some(meta),
        now,
    )
    .await?;
    let saved = profile::Entity::find_by_id(actor.id)
        .one(&transaction)
        .await?
        .ok_or(UserError::Inconsistent(
            "the profile vanished inside its transaction",
        ))?;
    transaction.commit().await?;
    Ok(saved.into())
}

pub async fn profile_view(
    connection: &impl ConnectionTrait,
    user_id: Uuid,
) -> Result<ProfileView, UserError> {
    profile::Entity::find_by_id(user_id)
        .one(connection)
        .await?
        .map(ProfileView::from)
        .ok_or(UserError::ProfileNotFound)
}
