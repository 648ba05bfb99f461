//! Users and profiles as clients see them.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::entities::{Role, profile, user};

/// A user account. Never carries the password hash.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub username: String,
    pub role: Role,
    #[serde(with = "crate::http::format::timestamp")]
    pub created_at: DateTime<Utc>,
    pub profile: Option<ProfileView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileView {
    pub user_id: Uuid,
    pub first_name: String,
    pub last_name: String,
    pub phone_number: Option<String>,
    pub address: Option<String>,
    pub date_of_birth: Option<NaiveDate>,
    #[serde(with = "crate::http::format::timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::http::format::timestamp")]
    pub updated_at: DateTime<Utc>,
}

impl UserView {
    pub fn new(user: user::Model, profile: Option<profile::Model>) -> UserView {
        UserView {
            id: user.id,
            email: user.email,
            username: user.username,
            role: user.role,
            created_at: user.created_at,
            profile: profile.map(ProfileView::from),
        }
    }
}

impl From<profile::Model> for ProfileView {
    fn from(profile: profile::Model) -> Self {
        ProfileView {
            user_id: profile.user_id,
            first_name: profile.first_name,
            last_name: profile.last_name,
            phone_number: profile.phone_number,
            address: profile.address,
            date_of_birth: profile.date_of_birth,
            created_at: profile.created_at,
            updated_at: profile.updated_at,
        }
    }
}
