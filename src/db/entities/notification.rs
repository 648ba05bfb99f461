use sea_orm::entity::prelude::*;

use super::NotificationKind;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notifications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub loan_id: Option<Uuid>,
    pub kind: NotificationKind,
    pub title: String,
    pub message: String,
    pub dedup_key: Option<String>,
    pub read_at: Option<DateTimeUtc>,
    pub email_enqueued_at: Option<DateTimeUtc>,
    pub emailed_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
