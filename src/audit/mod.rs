//! The audit trail: one row per state change, written inside the same
//! transaction as the change, and read back by administrators.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};
use serde_json::Value;
use uuid::Uuid;

use crate::auth::actor::RequestMeta;
use crate::db::entities::audit_log;

pub mod handlers;

/// What happened. Stored as its SCREAMING_SNAKE_CASE name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditAction {
    UserRegistered,
    LoginSucceeded,
    LoginFailed,
    RefreshReuseDetected,
    Logout,
    RoleChanged,
    ProfileUpdated,
    LoanApplied,
    LoanApproved,
    LoanRejected,
    LoanCancelled,
    PaymentRecorded,
    PenaltyApplied,
    LoanOverdue,
    LoanPaid,
}

impl AuditAction {
    pub const ALL: [AuditAction; 15] = [
        AuditAction::UserRegistered,
        AuditAction::LoginSucceeded,
        AuditAction::LoginFailed,
        AuditAction::RefreshReuseDetected,
        AuditAction::Logout,
        AuditAction::RoleChanged,
        AuditAction::ProfileUpdated,
        AuditAction::LoanApplied,
        AuditAction::LoanApproved,
        AuditAction::LoanRejected,
        AuditAction::LoanCancelled,
        AuditAction::PaymentRecorded,
        AuditAction::PenaltyApplied,
        AuditAction::LoanOverdue,
        AuditAction::LoanPaid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::UserRegistered => "USER_REGISTERED",
            AuditAction::LoginSucceeded => "LOGIN_SUCCEEDED",
            AuditAction::LoginFailed => "LOGIN_FAILED",
            AuditAction::RefreshReuseDetected => "REFRESH_REUSE_DETECTED",
            AuditAction::Logout => "LOGOUT",
            AuditAction::RoleChanged => "ROLE_CHANGED",
            AuditAction::ProfileUpdated => "PROFILE_UPDATED",
            AuditAction::LoanApplied => "LOAN_APPLIED",
            AuditAction::LoanApproved => "LOAN_APPROVED",
            AuditAction::LoanRejected => "LOAN_REJECTED",
            AuditAction::LoanCancelled => "LOAN_CANCELLED",
            AuditAction::PaymentRecorded => "PAYMENT_RECORDED",
            AuditAction::PenaltyApplied => "PENALTY_APPLIED",
            AuditAction::LoanOverdue => "LOAN_OVERDUE",
            AuditAction::LoanPaid => "LOAN_PAID",
        }
    }

    pub fn parse(text: &str) -> Option<AuditAction> {
        Self::ALL.into_iter().find(|action| action.as_str() == text)
    }
}

/// The kind of record an entry is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntityType {
    User,
    Loan,
    Payment,
}

impl EntityType {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityType::User => "USER",
            EntityType::Loan => "LOAN",
            EntityType::Payment => "PAYMENT",
        }
    }
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
    if entries.is_empty() {
        return Ok(());
    }
    audit_log::Entity::insert_many(entries.into_iter().map(|entry| row(entry, meta, now)))
        .exec_without_returning(connection)
        .await?;
    Ok(())
}

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
