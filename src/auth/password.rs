//! Password hashing with argon2id at OWASP's recommended parameters
//! (19 MiB memory, 2 iterations, 1 lane: the `argon2` crate's defaults).
//!
//! Hashing is CPU- and memory-heavy by design, so it runs on a small pool
//! of dedicated threads, one per core: a burst of logins queues instead of
//! multiplying 19 MiB allocations, and because the same few threads do all
//! the hashing, the allocator reuses their memory rather than keeping a
//! 19 MiB block per blocking-pool thread (which grew the process past
//! 380 MB under a login storm before this pool).

use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use secrecy::{ExposeSecret, SecretString};

type Job = Box<dyn FnOnce(&Argon2<'static>) + Send>;

#[derive(Debug)]
pub struct Passwords {
    jobs: mpsc::Sender<Job>,
    /// Verified against when a login names no known user, so that an
    /// unknown user costs the same time as a wrong password.
    dummy_hash: String,
}

impl Passwords {
    pub fn new() -> anyhow::Result<Passwords> {
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT);
        let dummy_hash = argon
            .hash_password(uuid::Uuid::new_v4().as_bytes())
            .map_err(|error| anyhow::anyhow!("cannot hash: {error}"))?
            .to_string();
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        for number in 0..threads {
            let receiver = Arc::clone(&receiver);
            let argon = argon.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{number}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = receiver
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .recv();
                        match job {
                            Ok(job) => job(&argon),
                            // Every sender is gone: the service is shutting down.
                            Err(_) => return,
                        }
                    }
                })
                .context("cannot start a password-hashing thread")?;
        }
        Ok(Passwords {
            jobs: sender,
            dummy_hash,
        })
    }

    /// Runs `work` on a hashing thread and waits for its result.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |argon| {
            let _ = reply.send(work(argon));
        });
        self.jobs
            .send(job)
            .map_err(|_| anyhow::anyhow!("password hashing is shut down"))?;
        answer.await.context("password hashing thread failed")
    }

    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) for `password`.
    pub async fn hash(&self, password: &SecretString) -> anyhow::Result<String> {
        let password = password.clone();
        self.run(move |argon| {
            argon
                .hash_password(password.expose_secret().as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|error| anyhow::anyhow!("cannot hash password: {error}"))
        })
        .await?
    }

    /// Whether `password` matches `stored`. With no stored hash (unknown
    /// user) it still does the full amount of work and answers `false`.
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: Option<&str>,
    ) -> anyhow::Result<bool> {
        let password = password.clone();
        let known = stored.is_some();
        let hash = stored.unwrap_or(&self.dummy_hash).to_owned();
        let matches = self
            .run(move |argon| {
                argon
                    .verify_password(password.expose_secret().as_bytes(), hash.as_str())
                    .is_ok()
            })
            .await?;
        Ok(known && matches)
    }
}
