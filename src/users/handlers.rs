//! HTTP handlers for `/users`.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::domain;
use super::service::{self, ProfileInput};
use super::views::{ProfileView, UserView};
use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::auth::actor::Actor;
use crate::db::entities::Role;
use crate::http::error::AppResult;
use crate::http::json::{Field, JsonBody, Validator};
use crate::http::pagination::{Page, PageParams, PageRequest, QueryParams};
use crate::http::path::PathId;
use crate::policy::{ChangeRoles, Permit, ReadAllUsers};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(list_users))
        .routes(routes!(get_user))
        .routes(routes!(change_role))
        .routes(routes!(get_profile))
        .routes(routes!(get_my_profile, put_my_profile))
}

/// The caller's own account.
#[utoipa::path(get, path = "/users/me", tag = "users",
    security(("bearerAuth" = [])),
    responses((status = 200, description = "The caller", body = UserView)))]
async fn me(State(state): State<AppState>, actor: Actor) -> AppResult<Json<UserView>> {
    Ok(Json(service::user_view(state.db.fresh(), actor.id).await?))
}

/// What to filter the user list by.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct UserFilter {
    role: Option<Role>,
    /// Only the user with this email (compared as registration stores it:
    /// trimmed, lower case).
    #[param(format = "email")]
    email: Option<String>,
}

/// Every user, newest first (ADMIN, MANAGER).
#[utoipa::path(get, path = "/users", tag = "users",
    security(("bearerAuth" = [])),
    params(UserFilter, PageParams),
    responses((status = 200, description = "A page of users", body = Page<UserView>)))]
async fn list_users(
    State(state): State<AppState>,
    permit: Permit<ReadAllUsers>,
    query: QueryParams,
) -> AppResult<Json<Page<UserView>>> {
    let mut validator = Validator::new();
    let page = PageRequest::from_query(&query, &mut validator);
    let after = page.after_id(&mut validator);
    let UserFilter { role, email } = query.parse_into(&mut validator);
    let email = email.and_then(|email| validator.check("email", domain::Email::parse(email)));
    validator.finish(|| Some(()))?;
    let filter = service::UserFilter { role, email };
    Ok(Json(
        service::list_users(&state, permit, filter, &page, after).await?,
    ))
}

/// One user (the user themselves, ADMIN, MANAGER).
#[utoipa::path(get, path = "/users/{id}", tag = "users",
    security(("bearerAuth" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses((status = 200, description = "The user", body = UserView)))]
async fn get_user(
    State(state): State<AppState>,
    actor: Actor,
    PathId(id): PathId,
) -> AppResult<Json<UserView>> {
    Ok(Json(service::user_for(&state, actor, id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChangeRoleRequest {
    #[serde(default)]
    #[schema(value_type = Role, required = true)]
    role: Field<String>,
}

/// Changes a user's role (ADMIN). The last admin cannot be demoted.
#[utoipa::path(patch, path = "/users/{id}/role", tag = "users",
    security(("bearerAuth" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    request_body = ChangeRoleRequest,
    responses(
        (status = 200, description = "The user with the new role", body = UserView),
        (status = 409, description = "The last admin cannot be demoted", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn change_role(
    State(state): State<AppState>,
    permit: Permit<ChangeRoles>,
    meta: RequestMeta,
    PathId(id): PathId,
    JsonBody(body): JsonBody<ChangeRoleRequest>,
) -> AppResult<Json<UserView>> {
    let mut validator = Validator::new();
    let role = validator.required("role", body.role, |text| {
        Role::parse(&text).ok_or("must be ADMIN, MANAGER or USER")
    });
    let role = validator.finish(|| role)?;
    Ok(Json(
        service::change_role(&state, permit, &meta, id, role).await?,
    ))
}

/// A user's profile (the user themselves, ADMIN, MANAGER); 404 if none yet.
#[utoipa::path(get, path = "/users/{id}/profile", tag = "users",
    security(("bearerAuth" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses((status = 200, description = "The profile", body = ProfileView)))]
async fn get_profile(
    State(state): State<AppState>,
    actor: Actor,
    PathId(id): PathId,
) -> AppResult<Json<ProfileView>> {
    Ok(Json(service::profile_for(&state, actor, id).await?))
}

/// The caller's own profile; 404 if none yet.
#[utoipa::path(get, path = "/users/me/profile", tag = "users",
    security(("bearerAuth" = [])),
    responses((status = 200, description = "The profile", body = ProfileView)))]
async fn get_my_profile(
    State(state): State<AppState>,
    actor: Actor,
) -> AppResult<Json<ProfileView>> {
    Ok(Json(
        service::profile_view(state.db.fresh(), actor.id).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProfileRequest {
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 100, pattern = r"\S")]
    first_name: Field<String>,
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 100, pattern = r"\S")]
    last_name: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 32, pattern = r"^( *|[0-9+() .-]*[0-9][0-9+() .-]*)$")]
    phone_number: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 500)]
    address: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<chrono::NaiveDate>)]
    date_of_birth: Field<String>,
}

/// Creates or replaces the caller's profile.
#[utoipa::path(put, path = "/users/me/profile", tag = "users",
    security(("bearerAuth" = [])),
    request_body = ProfileRequest,
    responses((status = 200, description = "The saved profile", body = ProfileView)))]
async fn put_my_profile(
    State(state): State<AppState>,
    actor: Actor,
    meta: RequestMeta,
    JsonBody(body): JsonBody<ProfileRequest>,
) -> AppResult<Json<ProfileView>> {
    let today = state.today();
    let mut validator = Validator::new();
    let first_name = validator.required("firstName", body.first_name, domain::person_name);
    let last_name = validator.required("lastName", body.last_name, domain::person_name);
    let phone_number = validator.optional("phoneNumber", body.phone_number, domain::phone_number);
    let address = validator.optional("address", body.address, domain::address);
    let date_of_birth = validator.optional("dateOfBirth", body.date_of_birth, |raw| {
        domain::date_of_birth(raw, today)
    });
    let input = validator.finish(|| {
        Some(ProfileInput {
            first_name: first_name?,
            last_name: last_name?,
            phone_number: phone_number?.flatten(),
            address: address?.flatten(),
            date_of_birth: date_of_birth?,
        })
    })?;
    Ok(Json(
        service::put_profile(&state, actor, &meta, input).await?,
    ))
}
