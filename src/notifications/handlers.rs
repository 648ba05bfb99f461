//! `/notifications`: a user's notifications, and marking one read.

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::service;
use super::views::NotificationView;
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::http::error::AppResult;
use crate::http::json::Validator;
use crate::http::pagination::{Page, PageParams, PageRequest, QueryParams};
use crate::http::path::PathId;
use crate::http::query::Flag;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_notifications))
        .routes(routes!(mark_read))
}

/// Only unread notifications.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct UnreadFilter {
    /// `true` for unread notifications only.
    #[param(value_type = Option<bool>)]
    unread: Option<Flag>,
}

/// A user's notifications, newest first (that user, ADMIN, MANAGER).
#[utoipa::path(get, path = "/notifications/user/{userId}", tag = "notifications",
    security(("bearerAuth" = [])),
    params(("userId" = Uuid, Path, description = "User id"), UnreadFilter, PageParams),
    responses((status = 200, description = "A page of notifications", body = Page<NotificationView>)))]
async fn list_notifications(
    State(state): State<AppState>,
    actor: Actor,
    PathId(user_id): PathId,
    query: QueryParams,
) -> AppResult<Json<Page<NotificationView>>> {
    let mut validator = Validator::new();
    let page = PageRequest::from_query(&query, &mut validator);
    let after = page.after_id(&mut validator);
    let filter: UnreadFilter = query.parse_into(&mut validator);
    let unread_only = filter.unread.is_some_and(|flag| flag.0);
    validator.finish(|| Some(()))?;
    Ok(Json(
        service::list_of_user(&state, actor, user_id, unread_only, &page, after).await?,
    ))
}

/// Marks one's own notification read (idempotent: the first read time stays).
#[utoipa::path(patch, path = "/notifications/{id}/read", tag = "notifications",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "Notification id")),
    responses((status = 200, description = "The notification", body = NotificationView)))]
async fn mark_read(
    State(state): State<AppState>,
    actor: Actor,
    PathId(id): PathId,
) -> AppResult<Json<NotificationView>> {
    Ok(Json(service::mark_read(&state, actor, id).await?))
}
