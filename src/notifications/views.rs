//! Notifications on the wire.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::entities::{NotificationKind, notification};

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: NotificationKind,
    pub title: String,
    pub message: String,
    /// The loan it is about.
    pub loan_id: Option<Uuid>,
    /// `null` until read.
    #[serde(with = "crate::http::format::timestamp::option")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub read_at: Option<DateTime<Utc>>,
    #[serde(with = "crate::http::format::timestamp")]
    pub created_at: DateTime<Utc>,
}

impl From<notification::Model> for NotificationView {
    fn from(row: notification::Model) -> Self {
        NotificationView {
            id: row.id,
            user_id: row.user_id,
            kind: row.kind,
            title: row.title,
            message: row.message,
            loan_id: row.loan_id,
            read_at: row.read_at,
            created_at: row.created_at,
        }
    }
}
