//! `/notifications`: a user's notifications, and marking one read.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::db::entities::{NotificationKind, notification};
use crate::http::error::{AppError, AppResult};
use crate::http::json::Validator;
use crate::http::pagination::{Page, PageParams, PageRequest, QueryParams};
use crate::http::path::PathId;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_notifications))
        .routes(routes!(mark_read))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: NotificationKind,
    pub title: String,
    pub message: String,
    /// The loan it is about.
    pub loan_id: Option<Uuid>,
    /// `null` until read.
    #[serde(with = "crate::http::format::timestamp::option")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub read_at: Option<DateTime<Utc>>,
    #[serde(with = "crate::http::format::timestamp")]
    pub created_at: DateTime<Utc>,
}

impl From<notification::Model> for NotificationView {
    fn from(row: notification::Model) -> Self {
        NotificationView {
            id: row.id,
            user_id: row.user_id,
            kind: row.kind,
            title: row.title,
            message: row.message,
            loan_id: row.loan_id,
            read_at: row.read_at,
            created_at: row.created_at,
        }
    }
}

/// Only unread notifications.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct UnreadFilter {
    /// `true` for unread notifications only.
    unread: Option<bool>,
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
    actor.require_self_or_staff(user_id)?;
    let mut validator = Validator::new();
    let page = PageRequest::from_query(&query, &mut validator);
    let after = page.after_id(&mut validator);
    let unread_only = match query.get("unread") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            validator.error("unread", "must be true or false");
            false
        }
    };
    validator.finish(|| Some(()))?;
    let mut select = notification::Entity::find()
        .filter(notification::Column::UserId.eq(user_id))
        .order_by_desc(notification::Column::Id)
        .limit(page.fetch_limit());
    if unread_only {
        // Literal, to match the partial index on unread notifications.
        select = select.filter(Expr::cust("read_at IS NULL"));
    }
    if let Some(after) = after {
        select = select.filter(notification::Column::Id.lt(after));
    }
    let rows = select.all(state.list_reader(actor.id).await).await?;
    Ok(Json(Page::from_rows(
        rows,
        &page,
        |n| vec![n.id.to_string()],
        NotificationView::from,
    )))
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
    let now = state.now();
    // Only the owner: anyone else, staff included, learns nothing.
    notification::Entity::update_many()
        .col_expr(notification::Column::ReadAt, Expr::value(now))
        .filter(notification::Column::Id.eq(id))
        .filter(notification::Column::UserId.eq(actor.id))
        .filter(notification::Column::ReadAt.is_null())
        .exec(&state.db.write)
        .await?;
    let row = notification::Entity::find_by_id(id)
        .filter(notification::Column::UserId.eq(actor.id))
        .one(&state.db.write)
        .await?
        .ok_or(AppError::NotFound("Notification"))?;
    Ok(Json(row.into()))
}
