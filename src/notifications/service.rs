//! Reading a user's notifications, and marking one read.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::views::NotificationView;
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::db::entities::notification;

/// Why a notification operation was refused, or failed.
#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    #[error("no such notification")]
    NotFound,
    #[error(transparent)]
    Forbidden(#[from] crate::policy::Forbidden),
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
}
use crate::http::pagination::{Page, PageRequest};
use crate::policy;

/// A user's notifications, newest first (that user, ADMIN, MANAGER).
pub async fn list_of_user(
    state: &AppState,
    actor: Actor,
    user_id: Uuid,
    unread_only: bool,
    page: &PageRequest,
    after: Option<Uuid>,
) -> Result<Page<NotificationView>, NotificationError> {
    policy::require_own_or_staff(actor, user_id)?;
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
    Ok(Page::from_rows(
        rows,
        page,
        |n| vec![n.id.to_string()],
        NotificationView::from,
    ))
}

/// Marks the actor's own notification read; the first read time stays.
/// Anyone else's, staff included, is a 404: only its owner reads it.
pub async fn mark_read(
    state: &AppState,
    actor: Actor,
    id: Uuid,
) -> Result<NotificationView, NotificationError> {
    let now = state.now();
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
        .ok_or(NotificationError::NotFound)?;
    Ok(row.into())
}
