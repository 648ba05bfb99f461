//! Password hashing with argon2id at OWASP's recommended strength: 7 MiB
//! of memory, 5 iterations, 1 lane. OWASP lists five configurations as
//! the same defence, trading memory for iterations (19 MiB and 2
//! iterations is another); this one costs about the same time per hash as
//! 19 MiB did and a third of the memory, so two hashing threads hold
//! 14 MiB instead of 38 MiB.
//!
//! Hashing is CPU- and memory-heavy by design, so it runs on a small pool
//! of dedicated threads, one per core, each with its own working memory
//! allocated once: a burst of logins queues instead of multiplying
//! allocations (which grew the process past 380 MB under a login storm
//! when hashing ran on the blocking pool), and the memory is neither
//! allocated nor freed per hash (which, with allocation per hash, still
//! left the process a few dozen MB larger after each burst). A thread
//! gives its memory back once it has had nothing to hash for a tenth of a
//! second, so a burst keeps it and the process does not carry 14 MiB
//! through the quiet hours, nor while the next burst of other requests
//! comes in (measured: no difference in a lone login's time, 22 ms). A
//! hash stored by an earlier version with more memory verifies in memory
//! allocated for it alone, and the login that verifies it stores a new
//! hash.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::{Duration, Instant};

use anyhow::Context;
use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use secrecy::{ExposeSecret, SecretString};

type Job = Box<dyn FnOnce(&mut HashingThread) + Send>;

/// How long a hashing thread with nothing to do keeps its memory.
const KEPT_WHILE_IDLE: Duration = Duration::from_millis(100);

/// Jobs waiting for a hashing thread. Every idle thread waits on it at
/// once, each with a clock of its own, so each can notice that it has
/// been idle long enough to give its memory back.
#[derive(Debug, Default)]
struct JobQueue {
    waiting: Mutex<Waiting>,
    job_added: Condvar,
    /// Bytes of working memory the hashing threads hold now.
    memory_held: AtomicUsize,
    /// Argon2 work done since the start, in memory blocks filled (blocks
    /// times passes): what every hash and verification cost, whatever the
    /// parameters it was made with.
    blocks_filled: AtomicU64,
}

#[derive(Default)]
struct Waiting {
    jobs: VecDeque<Job>,
    closed: bool,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Waiting")
            .field("jobs", &self.jobs.len())
            .field("closed", &self.closed)
            .finish()
    }
}

/// What a hashing thread is to do next.
enum Next {
    Run(Job),
    /// Nothing came within the idle time.
    GiveBackMemory,
    /// The service is shutting down.
    Stop,
}

impl JobQueue {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, job: Job) -> anyhow::Result<()> {
        let mut waiting = self.lock();
        if waiting.closed {
            anyhow::bail!("password hashing is shut down");
        }
        waiting.jobs.push_back(job);
        drop(waiting);
        self.job_added.notify_one();
        Ok(())
    }

    fn close(&self) {
        self.lock().closed = true;
        self.job_added.notify_all();
    }

    /// The next job; or, if `idle_limit` is given and passes with none,
    /// [`Next::GiveBackMemory`].
    fn next(&self, idle_limit: Option<Duration>) -> Next {
        let deadline = idle_limit.map(|limit| Instant::now() + limit);
        let mut waiting = self.lock();
        loop {
            if let Some(job) = waiting.jobs.pop_front() {
                return Next::Run(job);
            }
            if waiting.closed {
                return Next::Stop;
            }
            waiting = match deadline {
                None => self
                    .job_added
                    .wait(waiting)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                        return Next::GiveBackMemory;
                    };
                    self.job_added
                        .wait_timeout(waiting, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }
}

/// What one hashing thread keeps between jobs.
struct HashingThread {
    argon: Argon2<'static>,
    /// Working memory, reused by every hash this thread computes until the
    /// thread has been idle for [`KEPT_WHILE_IDLE`].
    memory: Vec<Block>,
    queue: Arc<JobQueue>,
}

impl HashingThread {
    /// The working memory is allocated by the first hash, so an idle
    /// process does not hold it.
    fn new(argon: Argon2<'static>, queue: Arc<JobQueue>) -> HashingThread {
        HashingThread {
            argon,
            memory: Vec::new(),
            queue,
        }
    }

    fn holds_memory(&self) -> bool {
        !self.memory.is_empty()
    }

    fn give_back_memory(&mut self) {
        self.queue.memory_held.fetch_sub(
            std::mem::size_of_val(self.memory.as_slice()),
            Ordering::Relaxed,
        );
        self.memory = Vec::new();
    }

    /// Hashes into `out` with `argon` (this thread's, or one built from a
    /// stored hash's parameters), in this thread's memory.
    fn compute(
        &mut self,
        argon: &Argon2<'_>,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> argon2::Result<()> {
        let needed = argon.params().block_count();
        let own = self.argon.params().block_count();
        self.queue.blocks_filled.fetch_add(
            u64::from(argon.params().t_cost())
                .saturating_mul(u64::try_from(needed).unwrap_or(u64::MAX)),
            Ordering::Relaxed,
        );
        if needed > own {
            // A hash stored with more memory than ours (by an earlier
            // version): memory for this hash only, which the login then
            // replaces with one of ours.
            let mut scratch = vec![Block::default(); needed];
            return argon.hash_password_into_with_memory(password, salt, out, &mut scratch);
        }
        if self.memory.len() < own {
            self.queue.memory_held.fetch_add(
                (own - self.memory.len()) * std::mem::size_of::<Block>(),
                Ordering::Relaxed,
            );
            self.memory.resize(own, Block::default());
        }
        argon.hash_password_into_with_memory(password, salt, out, &mut self.memory[..needed])
    }

    /// A new PHC string (`$argon2id$v=19$m=7168,t=5,p=1$…`) for `password`.
    fn hash(&mut self, password: &[u8]) -> anyhow::Result<String> {
        let salt = argon2::password_hash::try_generate_salt()
            .map_err(|error| anyhow::anyhow!("cannot make a salt: {error}"))?;
        let mut out = [0_u8; Params::DEFAULT_OUTPUT_LEN];
        let argon = self.argon.clone();
        self.compute(&argon, password, &salt, &mut out)
            .map_err(|error| anyhow::anyhow!("cannot hash password: {error}"))?;
        let phc = (|| -> argon2::password_hash::Result<PasswordHash> {
            Ok(PasswordHash {
                algorithm: Algorithm::Argon2id.ident(),
                version: Some(Version::V0x13.into()),
                params: ParamsString::try_from(argon.params())?,
                salt: Some(Salt::new(&salt)?),
                hash: Some(Output::new(&out)?),
            })
        })()
        .map_err(|error| anyhow::anyhow!("cannot encode the hash: {error}"))?;
        Ok(phc.to_string())
    }

    /// Whether `password` hashes to `stored`, with the parameters `stored`
    /// names. A malformed stored hash matches nothing.
    fn verify(&mut self, password: &[u8], stored: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return false;
        };
        let (Ok(algorithm), Ok(version), Ok(params)) = (
            Algorithm::try_from(parsed.algorithm.as_str()),
            parsed
                .version
                .map_or(Ok(Version::default()), Version::try_from),
            Params::try_from(&parsed),
        ) else {
            return false;
        };
        let argon = Argon2::new(algorithm, version, params);
        let mut out = vec![0_u8; expected.len()];
        self.compute(&argon, password, salt, &mut out).is_ok()
            // `Output` compares in constant time.
            && Output::new(&out).is_ok_and(|computed| computed == *expected)
    }
}

#[derive(Debug)]
pub struct Passwords {
    queue: Arc<JobQueue>,
    /// Verified against when a login names no known user, so that an
    /// unknown user costs the same time as a wrong password.
    dummy_hash: String,
}

impl Passwords {
    pub fn new() -> anyhow::Result<Passwords> {
        Passwords::keeping_memory_while_idle(KEPT_WHILE_IDLE)
    }

    fn keeping_memory_while_idle(idle_limit: Duration) -> anyhow::Result<Passwords> {
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, current_params()?);
        let queue = Arc::new(JobQueue::default());
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        for number in 0..threads {
            let queue = Arc::clone(&queue);
            let argon = argon.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{number}"))
                .spawn(move || {
                    let mut thread = HashingThread::new(argon, Arc::clone(&queue));
                    loop {
                        let idle_limit = thread.holds_memory().then_some(idle_limit);
                        match queue.next(idle_limit) {
                            Next::Run(job) => job(&mut thread),
                            Next::GiveBackMemory => thread.give_back_memory(),
                            Next::Stop => return,
                        }
                    }
                })
                .context("cannot start a password-hashing thread")?;
        }
        let (reply, answer) = mpsc::channel();
        queue.push(Box::new(move |thread: &mut HashingThread| {
            let _ = reply.send(thread.hash(uuid::Uuid::new_v4().as_bytes()));
        }))?;
        let dummy_hash = answer
            .recv()
            .context("the password-hashing threads stopped")??;
        Ok(Passwords { queue, dummy_hash })
    }

    /// Runs `work` on a hashing thread and waits for its result.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut HashingThread) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.queue.push(Box::new(move |thread| {
            let _ = reply.send(work(thread));
        }))?;
        answer.await.context("password hashing thread failed")
    }

    /// The PHC string (`$argon2id$v=19$m=7168,t=5,p=1$…`) for `password`.
    pub async fn hash(&self, password: &SecretString) -> anyhow::Result<String> {
        let password = password.clone();
        self.run(move |thread| thread.hash(password.expose_secret().as_bytes()))
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
            .run(move |thread| thread.verify(password.expose_secret().as_bytes(), &hash))
            .await?;
        Ok(known && matches)
    }

    /// Argon2 work done since the start, in memory blocks filled. A login
    /// adds the same amount whether or not the user exists.
    pub fn blocks_filled(&self) -> u64 {
        self.queue.blocks_filled.load(Ordering::Relaxed)
    }

    /// Whether `stored` was made with today's algorithm and parameters; a
    /// login that verifies an older one stores a new hash.
    pub fn is_current(&self, stored: &str) -> bool {
        let (Ok(stored), Ok(current)) = (PasswordHash::new(stored), current_params()) else {
            return false;
        };
        stored.algorithm == Algorithm::Argon2id.ident()
            && stored.version == Some(Version::V0x13.into())
            && Params::try_from(&stored).is_ok_and(|params| {
                (params.m_cost(), params.t_cost(), params.p_cost())
                    == (current.m_cost(), current.t_cost(), current.p_cost())
            })
    }
}

impl Drop for Passwords {
    /// The hashing threads finish the jobs already queued and stop.
    fn drop(&mut self) {
        self.queue.close();
    }
}

/// argon2id's cost today: 7 MiB (7 168 KiB), 5 iterations, 1 lane.
fn current_params() -> anyhow::Result<Params> {
    Params::new(7 * 1024, 5, 1, None)
        .map_err(|error| anyhow::anyhow!("invalid argon2 parameters: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordHasher;

    fn thread() -> HashingThread {
        HashingThread::new(
            Argon2::new(
                Algorithm::Argon2id,
                Version::V0x13,
                current_params().expect("params"),
            ),
            Arc::new(JobQueue::default()),
        )
    }

    const ONE_THREADS_MEMORY: usize = 7 * 1024 * 1024;

    fn memory_held(passwords: &Passwords) -> usize {
        passwords.queue.memory_held.load(Ordering::Relaxed)
    }

    /// A hash through `passwords` that its password verifies against and
    /// another does not.
    async fn hash_and_verify(passwords: &Passwords) {
        let password = SecretString::from("correct horse");
        let stored = passwords.hash(&password).await.expect("hash");
        assert!(
            passwords
                .verify(&password, Some(&stored))
                .await
                .expect("verify")
        );
        let wrong = SecretString::from("correct horsf");
        assert!(
            !passwords
                .verify(&wrong, Some(&stored))
                .await
                .expect("verify")
        );
    }

    #[tokio::test]
    async fn hashing_threads_keep_their_memory_while_busy() {
        let passwords =
            Passwords::keeping_memory_while_idle(Duration::from_secs(60)).expect("passwords");
        for _ in 0..4 {
            hash_and_verify(&passwords).await;
            // Each thread took its 7 MiB once, and still holds it.
            let held = memory_held(&passwords);
            assert!(
                held >= ONE_THREADS_MEMORY && held.is_multiple_of(ONE_THREADS_MEMORY),
                "{held}"
            );
            let threads = std::thread::available_parallelism().map_or(1, usize::from);
            assert!(held <= threads * ONE_THREADS_MEMORY, "{held}");
        }
    }

    #[tokio::test]
    async fn an_idle_hashing_thread_gives_its_memory_back_and_takes_it_again() {
        let passwords =
            Passwords::keeping_memory_while_idle(Duration::from_millis(50)).expect("passwords");
        for _ in 0..2 {
            let deadline = Instant::now() + Duration::from_secs(10);
            while memory_held(&passwords) > 0 {
                assert!(Instant::now() < deadline, "memory kept while idle");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            hash_and_verify(&passwords).await;
        }
    }

    #[test]
    fn dropped_passwords_finish_the_queued_jobs_and_take_no_more() {
        let passwords = Passwords::new().expect("passwords");
        let queue = Arc::clone(&passwords.queue);
        let (reply, answer) = mpsc::channel();
        for _ in 0..3 {
            let reply = reply.clone();
            queue
                .push(Box::new(move |thread: &mut HashingThread| {
                    let _ = reply.send(thread.hash(b"queued"));
                }))
                .expect("queued");
        }
        drop(reply);
        drop(passwords);
        let hashes: Vec<String> = answer.iter().map(|hash| hash.expect("hash")).collect();
        assert_eq!(hashes.len(), 3);
        assert!(queue.push(Box::new(|_: &mut HashingThread| {})).is_err());
    }

    #[test]
    fn a_new_hash_is_argon2id_at_owasp_parameters_and_verifies() {
        let mut thread = thread();
        let stored = thread.hash(b"correct horse").expect("hash");
        assert!(
            stored.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"),
            "{stored}"
        );
        assert!(thread.verify(b"correct horse", &stored));
        assert!(!thread.verify(b"correct horsf", &stored));
        assert_ne!(
            stored,
            thread.hash(b"correct horse").expect("hash"),
            "salted"
        );
    }

    #[test]
    fn hashes_made_by_the_argon2_crate_itself_verify_whatever_their_parameters() {
        let mut thread = thread();
        for params in [
            // An earlier version's 19 MiB, then less and more memory than
            // this thread holds.
            Params::DEFAULT,
            Params::new(4 * 1024, 1, 1, None).expect("params"),
            Params::new(24 * 1024, 3, 1, Some(48)).expect("params"),
        ] {
            let reference = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password(b"s3cret")
                .expect("reference hash")
                .to_string();
            assert!(thread.verify(b"s3cret", &reference), "{reference}");
            assert!(!thread.verify(b"S3cret", &reference), "{reference}");
        }
        // The larger hashes had memory of their own; the thread keeps only
        // its 7 MiB.
        assert_eq!(thread.memory.len(), 7 * 1024);
    }

    #[test]
    fn only_hashes_at_todays_parameters_are_current() {
        let passwords = Passwords::new().expect("passwords");
        let ours = thread().hash(b"s3cret").expect("hash");
        assert!(passwords.is_current(&ours), "{ours}");
        let earlier = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT)
            .hash_password(b"s3cret")
            .expect("reference hash")
            .to_string();
        assert!(earlier.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(!passwords.is_current(&earlier));
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            current_params().expect("params"),
        )
        .hash_password(b"s3cret")
        .expect("reference hash")
        .to_string();
        assert!(!passwords.is_current(&argon2i), "{argon2i}");
        assert!(!passwords.is_current("plain text"));
    }

    #[test]
    fn a_malformed_stored_hash_matches_nothing() {
        let mut thread = thread();
        for stored in [
            "",
            "plain text",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$bcrypt$x",
        ] {
            assert!(!thread.verify(b"", stored), "{stored}");
            assert!(!thread.verify(b"plain text", stored), "{stored}");
        }
    }
}
