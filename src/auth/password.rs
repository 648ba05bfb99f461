//! Password hashing with argon2id at OWASP's recommended parameters
//! (19 MiB memory, 2 iterations, 1 lane: the `argon2` crate's defaults).
//!
//! Hashing is CPU- and memory-heavy by design, so it runs on the blocking
//! pool and at most one hash per core runs at a time: a burst of logins
//! queues instead of multiplying 19 MiB allocations.

use std::sync::Arc;

use anyhow::Context;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

#[derive(Debug)]
pub struct Passwords {
    argon: Argon2<'static>,
    /// Verified against when a login names no known user, so that an
    /// unknown user costs the same time as a wrong password.
    dummy_hash: String,
    permits: Arc<Semaphore>,
}

impl Passwords {
    pub fn new() -> anyhow::Result<Passwords> {
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT);
        let dummy_hash = argon
            .hash_password(uuid::Uuid::new_v4().as_bytes())
            .map_err(|error| anyhow::anyhow!("cannot hash: {error}"))?
            .to_string();
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Ok(Passwords {
            argon,
            dummy_hash,
            permits: Arc::new(Semaphore::new(cores)),
        })
    }

    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) for `password`.
    pub async fn hash(&self, password: &SecretString) -> anyhow::Result<String> {
        let argon = self.argon.clone();
        let password = password.clone();
        let _permit = self
            .permits
            .acquire()
            .await
            .context("password hashing is shut down")?;
        tokio::task::spawn_blocking(move || {
            argon
                .hash_password(password.expose_secret().as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|error| anyhow::anyhow!("cannot hash password: {error}"))
        })
        .await
        .context("password hashing task failed")?
    }

    /// Whether `password` matches `stored`. With no stored hash (unknown
    /// user) it still does the full amount of work and answers `false`.
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: Option<&str>,
    ) -> anyhow::Result<bool> {
        let argon = self.argon.clone();
        let password = password.clone();
        let known = stored.is_some();
        let hash = stored.unwrap_or(&self.dummy_hash).to_owned();
        let _permit = self
            .permits
            .acquire()
            .await
            .context("password hashing is shut down")?;
        let matches = tokio::task::spawn_blocking(move || {
            argon
                .verify_password(password.expose_secret().as_bytes(), hash.as_str())
                .is_ok()
        })
        .await
        .context("password verification task failed")?;
        Ok(known && matches)
    }
}
