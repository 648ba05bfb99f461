//! Reading the audit trail back.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::AuditAction;
use super::views::AuditLogView;
use crate::app::AppState;
use crate::db::entities::audit_log;
use crate::http::pagination::{Page, PageRequest};
use crate::policy::{Permit, ReadAuditLog};

/// Which entries a list shows; every filter is optional.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor_id: Option<Uuid>,
    pub entity_id: Option<Uuid>,
    pub action: Option<AuditAction>,
    /// At or after.
    pub from: Option<DateTime<Utc>>,
    /// At or before.
    pub to: Option<DateTime<Utc>>,
}

/// Audit entries, newest first.
pub async fn list(
    state: &AppState,
    permit: Permit<ReadAuditLog>,
    filter: AuditFilter,
    page: &PageRequest,
    after: Option<Uuid>,
) -> Result<Page<AuditLogView>, sea_orm::DbErr> {
    let mut select = audit_log::Entity::find()
        .order_by_desc(audit_log::Column::Id)
        .limit(page.fetch_limit());
    if let Some(after) = after {
        select = select.filter(audit_log::Column::Id.lt(after));
    }
    if let Some(actor_id) = filter.actor_id {
        select = select.filter(audit_log::Column::ActorId.eq(actor_id));
    }
    if let Some(entity_id) = filter.entity_id {
        select = select.filter(audit_log::Column::EntityId.eq(entity_id));
    }
    if let Some(action) = filter.action {
        select = select.filter(audit_log::Column::Action.eq(action.as_str()));
    }
    if let Some(from) = filter.from {
        select = select.filter(audit_log::Column::CreatedAt.gte(from));
    }
    if let Some(to) = filter.to {
        select = select.filter(audit_log::Column::CreatedAt.lte(to));
    }
    let rows = select
        .all(state.list_reader(permit.actor().id).await)
        .await?;
    Ok(Page::from_rows(
        rows,
        page,
        |row| vec![row.id.to_string()],
        AuditLogView::from,
    ))
}
