//! The audit trail: one row per state change, written inside the same
//! transaction as the change, and read back by administrators.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::InsertStatement;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbBackend, EntityTrait, QueryTrait};
use serde_json::Value;
use uuid::Uuid;

use crate::db::batch::WriteBatch;
use crate::db::entities::audit_log;

pub mod handlers;
pub mod service;
pub mod views;

pub use crate::enums::{AuditAction, EntityType};

/// Facts about the request behind a change, recorded in its audit entry
/// (`crate::http::extract` reads them off a request).
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub request_id: Option<String>,
    pub ip: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
}

/// One audit entry before it is stored.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub actor_id: Option<Uuid>,
    pub action: AuditAction,
    pub entity: Option<(EntityType, Uuid)>,
    /// A JSON object; never a password or token.
    pub details: Value,
}

impl AuditEntry {
    pub fn new(action: AuditAction, actor_id: Option<Uuid>) -> AuditEntry {
        AuditEntry {
            actor_id,
            action,
            entity: None,
            details: Value::Object(serde_json::Map::new()),
        }
    }

    pub fn entity(mut self, entity_type: EntityType, id: Uuid) -> AuditEntry {
        self.entity = Some((entity_type, id));
        self
    }

    pub fn details(mut self, details: Value) -> AuditEntry {
        self.details = details;
        self
    }
}

/// Writes `entry` on `connection` (normally the transaction making the
/// change). `meta` is `None` for scheduled jobs, which have no request.
pub async fn record(
    connection: &impl ConnectionTrait,
    entry: AuditEntry,
    meta: Option<&RequestMeta>,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    audit_log::Entity::insert(row(entry, meta, now))
        .exec_without_returning(connection)
        .await?;
    Ok(())
}

/// Writes many entries in one statement (jobs; `meta` is the request
/// that started the job, if one did).
pub async fn record_many(
    connection: &impl ConnectionTrait,
    entries: Vec<AuditEntry>,
    meta: Option<&RequestMeta>,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    for statement in inserts(connection.get_database_backend(), entries, meta, now) {
        connection.execute(&statement).await?;
    }
    Ok(())
}

/// Adds `entry` to `batch`, to be written with the change it records.
pub fn push(
    batch: &mut WriteBatch,
    entry: AuditEntry,
    meta: Option<&RequestMeta>,
    now: DateTime<Utc>,
) {
    push_many(batch, vec![entry], meta, now);
}

/// Adds entries to `batch`, to be written with the change they record.
pub fn push_many(
    batch: &mut WriteBatch,
    entries: Vec<AuditEntry>,
    meta: Option<&RequestMeta>,
    now: DateTime<Utc>,
) {
    for statement in inserts(batch.backend(), entries, meta, now) {
        batch.insert(statement);
    }
}

/// The inserts of `entries`, as many rows a statement as `backend` binds.
fn inserts(
    backend: DbBackend,
    entries: Vec<AuditEntry>,
    meta: Option<&RequestMeta>,
    now: DateTime<Utc>,
) -> Vec<InsertStatement> {
    let per_statement = crate::db::rows_per_statement(backend, COLUMNS);
    let mut rows = entries
        .into_iter()
        .map(|entry| row(entry, meta, now))
        .peekable();
    let mut statements = Vec::new();
    while rows.peek().is_some() {
        let chunk: Vec<audit_log::ActiveModel> = rows.by_ref().take(per_statement).collect();
        statements.push(audit_log::Entity::insert_many(chunk).into_query());
    }
    statements
}

/// The columns [`row`] sets.
const COLUMNS: usize = 9;

fn row(
    entry: AuditEntry,
    meta: Option<&RequestMeta>,
    now: DateTime<Utc>,
) -> audit_log::ActiveModel {
    audit_log::ActiveModel {
        id: Set(Uuid::now_v7()),
        actor_id: Set(entry.actor_id),
        action: Set(entry.action.as_str().to_owned()),
        entity_type: Set(entry.entity.map(|(kind, _)| kind.as_str().to_owned())),
        entity_id: Set(entry.entity.map(|(_, id)| id)),
        details: Set(entry.details),
        ip: Set(meta.and_then(|meta| meta.ip).map(|ip| ip.to_string())),
        request_id: Set(meta.and_then(|meta| meta.request_id.clone())),
        created_at: Set(now),
    }
}
