//! `GET /audit-logs`: the trail, for administrators.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AuditAction;
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::db::entities::audit_log;
use crate::http::error::AppResult;
use crate::http::json::Validator;
use crate::http::pagination::{Page, PageParams, PageRequest, QueryParams};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_logs))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditLogView {
    pub id: Uuid,
    /// `null` for anonymous actions (a failed login) and scheduled jobs.
    pub actor_id: Option<Uuid>,
    pub action: String,
    /// `USER`, `LOAN` or `PAYMENT`.
    pub entity_type: Option<String>,
    pub entity_id: Option<Uuid>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub ip: Option<String>,
    /// `null` only for scheduled jobs.
    pub request_id: Option<String>,
    #[serde(with = "crate::http::format::timestamp")]
    pub created_at: DateTime<Utc>,
}

impl From<audit_log::Model> for AuditLogView {
    fn from(row: audit_log::Model) -> Self {
        AuditLogView {
            id: row.id,
            actor_id: row.actor_id,
            action: row.action,
            entity_type: row.entity_type,
            entity_id: row.entity_id,
            details: row.details,
            ip: row.ip,
            request_id: row.request_id,
            created_at: row.created_at,
        }
    }
}

/// Filters of the audit list.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct AuditFilters {
    #[param(rename = "actorId")]
    actor_id: Option<Uuid>,
    #[param(value_type = Option<crate::enums::AuditAction>, inline)]
    action: Option<String>,
    #[param(rename = "entityId")]
    entity_id: Option<Uuid>,
    /// Entries at or after this RFC 3339 timestamp.
    from: Option<DateTime<Utc>>,
    /// Entries at or before this RFC 3339 timestamp.
    to: Option<DateTime<Utc>>,
}

/// Audit entries, newest first (ADMIN).
#[utoipa::path(get, path = "/audit-logs", tag = "audit",
    security(("bearerAuth" = [])),
    params(AuditFilters, PageParams),
    responses((status = 200, description = "A page of audit entries", body = Page<AuditLogView>)))]
async fn list_audit_logs(
    State(state): State<AppState>,
    actor: Actor,
    query: QueryParams,
) -> AppResult<Json<Page<AuditLogView>>> {
    actor.require_admin()?;
    let mut validator = Validator::new();
    let page = PageRequest::from_query(&query, &mut validator);
    let after = page.after_id(&mut validator);
    let uuid_param = |validator: &mut Validator, name: &str| {
        query.get(name).and_then(|raw| {
            let parsed = Uuid::parse_str(raw).map_err(|_| "must be a UUID");
            validator.check(name, parsed)
        })
    };
    let actor_id = uuid_param(&mut validator, "actorId");
    let entity_id = uuid_param(&mut validator, "entityId");
    let action = query.get("action").and_then(|raw| {
        validator.check(
            "action",
            AuditAction::parse(raw).ok_or("is not a known audit action"),
        )
    });
    let timestamp_param = |validator: &mut Validator, name: &str| {
        query.get(name).and_then(|raw| {
            let parsed = DateTime::parse_from_rfc3339(raw)
                .map(|moment| moment.with_timezone(&Utc))
                .map_err(|_| "must be an RFC 3339 timestamp such as 2026-11-24T15:04:05Z");
            validator.check(name, parsed)
        })
    };
    let from = timestamp_param(&mut validator, "from");
    let to = timestamp_param(&mut validator, "to");
    validator.finish(|| Some(()))?;

    let mut select = audit_log::Entity::find()
        .order_by_desc(audit_log::Column::Id)
        .limit(page.fetch_limit());
    if let Some(after) = after {
        select = select.filter(audit_log::Column::Id.lt(after));
    }
    if let Some(actor_id) = actor_id {
        select = select.filter(audit_log::Column::ActorId.eq(actor_id));
    }
    if let Some(entity_id) = entity_id {
        select = select.filter(audit_log::Column::EntityId.eq(entity_id));
    }
    if let Some(action) = action {
        select = select.filter(audit_log::Column::Action.eq(action.as_str()));
    }
    if let Some(from) = from {
        select = select.filter(audit_log::Column::CreatedAt.gte(from));
    }
    if let Some(to) = to {
        select = select.filter(audit_log::Column::CreatedAt.lte(to));
    }
    let rows = select.all(state.list_reader(actor.id).await).await?;
    Ok(Json(Page::from_rows(
        rows,
        &page,
        |row| vec![row.id.to_string()],
        AuditLogView::from,
    )))
}
