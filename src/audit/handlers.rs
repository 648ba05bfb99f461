//! `GET /audit-logs`: the trail, for administrators.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AuditAction;
use super::service::{self, AuditFilter};
use super::views::AuditLogView;
use crate::app::AppState;
use crate::http::error::AppResult;
use crate::http::json::Validator;
use crate::http::pagination::{Page, PageParams, PageRequest, QueryParams};
use crate::policy::{Permit, ReadAuditLog};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_logs))
}

/// Filters of the audit list.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "only its derived OpenAPI parameters are used; the query is parsed by hand so every bad value is a 422 naming it"
)]
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
    permit: Permit<ReadAuditLog>,
    query: QueryParams,
) -> AppResult<Json<Page<AuditLogView>>> {
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
    let filter = validator.finish(|| {
        Some(AuditFilter {
            actor_id,
            entity_id,
            action,
            from,
            to,
        })
    })?;
    Ok(Json(
        service::list(&state, permit, filter, &page, after).await?,
    ))
}
