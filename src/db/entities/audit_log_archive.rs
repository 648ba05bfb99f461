use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_logs_archive")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub entity_type: Option<String>,
    pub entity_id: Option<Uuid>,
    pub details: Json,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub created_at: DateTimeUtc,
    pub archived_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
