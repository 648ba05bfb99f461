//! `GET /audit-logs`: the trail, for administrators.

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AuditAction;
use super::service::{self, AuditFilter};
use super::views::AuditLogView;
use crate::app::AppState;
use crate::http::error::AppResult;
use crate::http::json::Validator;
use crate::http::pagination::{Page, PageParams, PageRequest, QueryParams};
use crate::http::query::{Id, Timestamp};
use crate::policy::{Permit, ReadAuditLog};
use serde::Deserialize;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_logs))
}

/// Filters of the audit list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
struct AuditFilters {
    #[param(value_type = Option<uuid::Uuid>)]
    actor_id: Option<Id>,
    #[param(value_type = Option<crate::enums::AuditAction>, inline)]
    action: Option<AuditAction>,
    #[param(value_type = Option<uuid::Uuid>)]
    entity_id: Option<Id>,
    /// Entries at or after this RFC 3339 timestamp.
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    from: Option<Timestamp>,
    /// Entries at or before this RFC 3339 timestamp.
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    to: Option<Timestamp>,
}

/// Audit entries, newest first (ADMIN).
#[utoipa::path(get, path = "/audit-logs", tag = "audit",
    security(("bearerAuth" = [])),
    params(AuditFilters, PageParams),
    responses((status = 200, description = "A page of audit entries", body = Page<AuditLogView>)))]
async fn list_audit_logs(
    State(state): State<AppState>,
    permit: Permit<ReadAuditLog>,
    query: QueryParams,
) -> AppResult<Json<Page<AuditLogView>>> {
    let mut validator = Validator::new();
    let page = PageRequest::from_query(&query, &mut validator);
    let after = page.after_id(&mut validator);
    let filters: AuditFilters = query.parse_into(&mut validator);
    let filter = validator.finish(|| {
        Some(AuditFilter {
            actor_id: filters.actor_id.map(|id| id.0),
            entity_id: filters.entity_id.map(|id| id.0),
            action: filters.action,
            from: filters.from.map(|moment| moment.0),
            to: filters.to.map(|moment| moment.0),
        })
    })?;
    Ok(Json(
        service::list(&state, permit, filter, &page, after).await?,
    ))
}
