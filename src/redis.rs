//! Connecting to Redis, for everything that shares state through it (the
//! cache, rate limits, read routing, the email queue): one connection
//! policy and one deadline for every call.

use std::future::Future;
use std::time::Duration;

use ::redis::aio::ConnectionManager;

/// How long any one Redis call may take before it counts as failed.
const REDIS_TIMEOUT: Duration = Duration::from_millis(300);

/// Runs a Redis call with a short deadline, so a hung Redis slows no
/// request by more than [`REDIS_TIMEOUT`].
pub async fn with_timeout<T>(
    call: impl Future<Output = ::redis::RedisResult<T>>,
) -> ::redis::RedisResult<T> {
    match tokio::time::timeout(REDIS_TIMEOUT, call).await {
        Ok(result) => result,
        Err(_) => Err(::redis::RedisError::from((
            ::redis::ErrorKind::Io,
            "redis call timed out",
        ))),
    }
}

/// A connection manager that connects lazily and reconnects by itself,
/// failing calls fast while Redis is away.
pub fn connect(url: &str) -> ::redis::RedisResult<ConnectionManager> {
    let client = ::redis::Client::open(url)?;
    let config = ::redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(1));
    ConnectionManager::new_lazy_with_config(client, config)
}

/// Whether Redis answers `PING`.
pub async fn ping(connection: &ConnectionManager) -> bool {
    let mut connection = connection.clone();
    with_timeout(async {
        ::redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
    })
    .await
    .is_ok()
}
