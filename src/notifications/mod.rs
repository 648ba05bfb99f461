//! Notifications: rows telling a user what happened to their loans.
//! Written inside the transaction of the change they announce.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};
use uuid::Uuid;

use crate::db::entities::{NotificationKind, notification};

/// A notification about to be written.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub user_id: Uuid,
    pub loan_id: Uuid,
    pub kind: NotificationKind,
    pub title: String,
    pub message: String,
    /// For notifications written by jobs: `(installment, kind, date)`, so a
    /// re-run cannot write the same one twice.
    pub dedup_key: Option<String>,
}

pub async fn write(
    connection: &impl ConnectionTrait,
    new: NewNotification,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    let row = notification::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(new.user_id),
        loan_id: Set(Some(new.loan_id)),
        kind: Set(new.kind),
        title: Set(new.title),
        message: Set(new.message),
        dedup_key: Set(new.dedup_key),
        read_at: Set(None),
        email_enqueued_at: Set(None),
        created_at: Set(now),
    };
    notification::Entity::insert(row)
        .exec_without_returning(connection)
        .await?;
    Ok(())
}
