//! Notifications: rows telling a user what happened to their loans,
//! written inside the transaction of the change they announce, readable
//! through `/notifications`, and delivered by email through the queue.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, InsertStatement, OnConflict};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbBackend, EntityTrait, QueryTrait};
use uuid::Uuid;

use crate::db::batch::WriteBatch;
use crate::db::entities::{NotificationKind, notification};

pub mod delivery;
pub mod email;
pub mod handlers;
pub mod messages;
pub mod service;
pub mod views;

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
    notification::Entity::insert(row(new, now))
        .exec_without_returning(connection)
        .await?;
    Ok(())
}

/// Adds a notification to `batch`.
pub fn push(batch: &mut WriteBatch, new: NewNotification, now: DateTime<Utc>) {
    batch.insert(notification::Entity::insert(row(new, now)).into_query());
}

/// Writes a notification carrying a `dedup_key` unless one with that key
/// exists; returns whether it was written. Jobs use this so that running
/// them twice cannot notify twice.
pub async fn write_once(
    connection: &impl ConnectionTrait,
    new: NewNotification,
    now: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    Ok(write_many_once(connection, vec![new], now).await? == 1)
}

/// Writes many deduplicated notifications, in as few statements as the
/// backend can bind; returns how many were new.
pub async fn write_many_once(
    connection: &impl ConnectionTrait,
    news: Vec<NewNotification>,
    now: DateTime<Utc>,
) -> Result<u64, sea_orm::DbErr> {
    let mut written = 0;
    for statement in inserts_once(connection.get_database_backend(), news, now) {
        written += connection.execute(&statement).await?.rows_affected();
    }
    Ok(written)
}

/// Adds deduplicated notifications to `batch` (as [`write_many_once`],
/// without counting them).
pub fn push_many_once(batch: &mut WriteBatch, news: Vec<NewNotification>, now: DateTime<Utc>) {
    for statement in inserts_once(batch.backend(), news, now) {
        batch.insert(statement);
    }
}

/// The inserts of `news` that skip a `dedup_key` already written, as many
/// rows a statement as `backend` binds.
fn inserts_once(
    backend: DbBackend,
    news: Vec<NewNotification>,
    now: DateTime<Utc>,
) -> Vec<InsertStatement> {
    let per_statement = crate::db::rows_per_statement(backend, COLUMNS);
    let mut rows = news.into_iter().map(|new| row(new, now)).peekable();
    let mut statements = Vec::new();
    while rows.peek().is_some() {
        let chunk: Vec<notification::ActiveModel> = rows.by_ref().take(per_statement).collect();
        statements.push(
            notification::Entity::insert_many(chunk)
                .on_conflict(
                    // The unique index is partial: the conflict target
                    // names its predicate.
                    OnConflict::column(notification::Column::DedupKey)
                        .target_and_where(Expr::col(notification::Column::DedupKey).is_not_null())
                        .do_nothing()
                        .to_owned(),
                )
                .into_query(),
        );
    }
    statements
}

/// The columns [`row`] sets.
const COLUMNS: usize = 11;

fn row(new: NewNotification, now: DateTime<Utc>) -> notification::ActiveModel {
    notification::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(new.user_id),
        loan_id: Set(Some(new.loan_id)),
        kind: Set(new.kind),
        title: Set(new.title),
        message: Set(new.message),
        dedup_key: Set(new.dedup_key),
        read_at: Set(None),
        email_enqueued_at: Set(None),
        emailed_at: Set(None),
        created_at: Set(now),
    }
}
