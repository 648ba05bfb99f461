//! The audit trail on the wire.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::entities::audit_log;

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
