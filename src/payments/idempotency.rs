//! Idempotency keys: a client that retries a payment with the same
//! `Idempotency-Key` gets the original answer instead of a second payment.
//!
//! The key row is claimed first thing inside the payment's transaction. A
//! concurrent request with the same key blocks on that row's unique index
//! until the first commits, then finds it and replays its response; if the
//! first rolls back, the second proceeds as if it had been first.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, QueryTrait};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::batch::WriteBatch;
use crate::db::entities::idempotency_key;
use crate::http::format::RawJson;

/// How long a key is remembered.
pub const KEY_TTL: chrono::Duration = chrono::Duration::hours(24);
pub const MAX_KEY_LENGTH: usize = 255;

/// What the claim of a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is new: go ahead, then [`store_response`].
    Fresh,
    /// The same request was answered before: send this again.
    Replay { body: RawJson },
    /// The key was used for a different request.
    Mismatch,
}

/// A valid key: 1–255 printable ASCII characters.
pub fn parse_key(raw: &str) -> Result<String, &'static str> {
    if raw.is_empty()
        || raw.len() > MAX_KEY_LENGTH
        || !raw.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err("must be 1 to 255 printable ASCII characters");
    }
    Ok(raw.to_owned())
}

/// A digest of what makes two requests "the same".
pub fn fingerprint(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hex::encode(hasher.finalize())
}

pub async fn claim(
    connection: &impl ConnectionTrait,
    user_id: Uuid,
    key: &str,
    request_fingerprint: &str,
    now: DateTime<Utc>,
) -> Result<Claim, sea_orm::DbErr> {
    if insert_placeholder(connection, user_id, key, request_fingerprint, now).await? {
        return Ok(Claim::Fresh);
    }
    let existing = idempotency_key::Entity::find_by_id((user_id, key.to_owned()))
        .one(connection)
        .await?;
    let Some(existing) = existing else {
        // Deleted between our insert and read (an expiry sweep): claim anew.
        return Ok(
            if insert_placeholder(connection, user_id, key, request_fingerprint, now).await? {
                Claim::Fresh
            } else {
                Claim::Mismatch
            },
        );
    };
    if existing.expires_at <= now {
        idempotency_key::Entity::delete_by_id((user_id, key.to_owned()))
            .exec(connection)
            .await?;
        insert_placeholder(connection, user_id, key, request_fingerprint, now).await?;
        return Ok(Claim::Fresh);
    }
    if existing.request_fingerprint != request_fingerprint {
        return Ok(Claim::Mismatch);
    }
    Ok(Claim::Replay {
        body: RawJson::from_stored(&existing.response_body),
    })
}

/// Inserts the key with an empty response; false if it already exists.
async fn insert_placeholder(
    connection: &impl ConnectionTrait,
    user_id: Uuid,
    key: &str,
    request_fingerprint: &str,
    now: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    let row = idempotency_key::ActiveModel {
        user_id: Set(user_id),
        idempotency_key: Set(key.to_owned()),
        request_fingerprint: Set(request_fingerprint.to_owned()),
        response_status: Set(0),
        response_body: Set(String::new()),
        created_at: Set(now),
        expires_at: Set(now + KEY_TTL),
    };
    let inserted = idempotency_key::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                idempotency_key::Column::UserId,
                idempotency_key::Column::IdempotencyKey,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(connection)
        .await?;
    Ok(inserted == 1)
}

/// The status every stored answer had: a key is kept only for a payment
/// recorded (`201 Created`); a refused request releases its key.
const STORED_STATUS: i32 = 201;

/// Adds to `batch` the answer to replay for this key.
pub fn push_response(
    batch: &mut WriteBatch,
    user_id: Uuid,
    key: &str,
    body: &RawJson,
) -> Result<(), sea_orm::DbErr> {
    let row = idempotency_key::ActiveModel {
        user_id: Set(user_id),
        idempotency_key: Set(key.to_owned()),
        response_status: Set(STORED_STATUS),
        response_body: Set(body.as_text().into_owned()),
        ..Default::default()
    };
    batch.update(
        idempotency_key::Entity::update(row)
            .validate()?
            .into_query(),
    );
    Ok(())
}

/// Adds to `batch` the removal of a key claimed for a request that was
/// then refused: the key stays free, as if the request had never come.
pub fn push_release(batch: &mut WriteBatch, user_id: Uuid, key: &str) {
    batch.delete(idempotency_key::Entity::delete_by_id((user_id, key.to_owned())).into_query());
}
