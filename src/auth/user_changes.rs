//! Keeps the cached user behind each token honest. The cache saves a
//! database read on every authenticated request, but a user deleted or
//! demoted outside the API would keep their old access until the entry
//! expired. On PostgreSQL a trigger announces every such change on a
//! channel (migration `m20261127_000001`) and this follower drops the
//! user's cached entry the moment it hears of it; on SQLite, where no such
//! channel exists and a lookup costs microseconds, the actor is read from
//! the database on every request instead (see `actor.rs`).

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sqlx::postgres::PgListener;
use uuid::Uuid;

use crate::app::Services;
use crate::cache::CacheKind;

/// The channel the trigger notifies, with the user's id as payload.
pub const CHANNEL: &str = "loan_tracker_user_changed";
/// How often the follower checks that the service it serves still exists.
const LIVENESS_CHECK: Duration = Duration::from_secs(1);
/// Pause before listening again after the connection failed.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// Follows the channel at `database_url` until `services` is dropped.
pub async fn follow(database_url: String, services: Weak<Services>) {
    while services.strong_count() > 0 {
        let mut listener = match PgListener::connect(&database_url).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for user changes; retrying");
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
        };
        if let Err(error) = listener.listen(CHANNEL).await {
            tracing::warn!(%error, "cannot listen for user changes; retrying");
            tokio::time::sleep(RECONNECT_PAUSE).await;
            continue;
        }
        // From now on every change is heard: cached users can be trusted.
        // (Until now none was cached: a change before this was unheard.)
        let Some(listening) = services.upgrade() else {
            return;
        };
        listening.user_changes_heard.store(true, Ordering::Release);
        drop(listening);
        loop {
            let notice = tokio::select! {
                notice = listener.try_recv() => notice,
                () = tokio::time::sleep(LIVENESS_CHECK) => {
                    if services.strong_count() == 0 {
                        return;
                    }
                    continue;
                }
            };
            let Some(services) = services.upgrade() else {
                return;
            };
            match notice {
                Ok(Some(notice)) => match Uuid::parse_str(notice.payload()) {
                    Ok(user) => services.cache.invalidate(CacheKind::User, user).await,
                    Err(_) => tracing::warn!(payload = notice.payload(), "odd user-change notice"),
                },
                // The connection dropped: notices may have been missed, so
                // no cached user can be trusted.
                Ok(None) | Err(_) => {
                    tracing::warn!("lost the user-change channel; forgetting cached users");
                    services.user_changes_heard.store(false, Ordering::Release);
                    services.cache.forget_everything().await;
                    break;
                }
            }
        }
    }
}
