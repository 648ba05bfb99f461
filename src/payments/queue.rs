//! The queue of ordinary payments waiting to be written, several to a
//! transaction (`payments::combining` takes them from it). Plain data and
//! bookkeeping: who waits, how many writers are at work, what has been
//! committed.

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use super::domain::{PaymentError, PaymentReply, PaymentRequest};
use crate::audit::RequestMeta;
use crate::auth::actor::Actor;

/// The queue of ordinary payments waiting for a writer.
pub struct PaymentQueue {
    state: Mutex<Queue>,
    /// How many transactions of combined payments may be open at once.
    writers_allowed: usize,
    /// The most payments one transaction takes.
    most_per_transaction: usize,
}

struct Queue {
    waiting: VecDeque<Queued>,
    writers: usize,
    /// Requests taken in and not yet answered, waiting or being written.
    unanswered: usize,
    /// Transactions of payments committed since the start.
    committed: u64,
}

/// A payment request and where its answer goes.
pub struct Queued {
    pub job: Job,
    pub answer: oneshot::Sender<Result<PaymentReply, PaymentError>>,
}

/// One payment request as the writer takes it.
pub struct Job {
    pub actor: Actor,
    pub meta: RequestMeta,
    pub request: PaymentRequest,
}

impl PaymentQueue {
    /// A queue served by at most `writers_allowed` transactions at a time,
    /// each taking at most `most_per_transaction` payments.
    pub fn new(writers_allowed: usize, most_per_transaction: usize) -> PaymentQueue {
        PaymentQueue {
            state: Mutex::new(Queue {
                waiting: VecDeque::new(),
                writers: 0,
                unanswered: 0,
                committed: 0,
            }),
            writers_allowed: writers_allowed.max(1),
            most_per_transaction: most_per_transaction.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue's state is whole between statements: a panic elsewhere
        // while it was held leaves nothing half done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a request; true if the caller must start a writer for it.
    pub fn enqueue(&self, queued: Queued) -> bool {
        let mut queue = self.lock();
        queue.waiting.push_back(queued);
        queue.unanswered += 1;
        if queue.writers < self.writers_allowed {
            queue.writers += 1;
            true
        } else {
            false
        }
    }

    /// The next payments to write together, in arrival order; none (and
    /// one writer fewer) when the queue is empty. Two requests with the
    /// same idempotency key never go together: the later one must find the
    /// earlier one's answer, so it waits for the next transaction.
    pub fn take_next(&self) -> Vec<Queued> {
        let mut queue = self.lock();
        let mut taken = Vec::new();
        let mut keys = HashSet::new();
        let mut left = VecDeque::new();
        while let Some(queued) = queue.waiting.pop_front() {
            let repeated_key = queued
                .job
                .request
                .idempotency_key
                .as_ref()
                .is_some_and(|key| !keys.insert((queued.job.actor.id, key.clone())));
            if taken.len() == self.most_per_transaction || repeated_key {
                left.push_back(queued);
            } else {
                taken.push(queued);
            }
        }
        queue.waiting = left;
        if taken.is_empty() {
            queue.writers -= 1;
        }
        taken
    }

    /// Payment requests taken in and not yet answered.
    pub fn unanswered(&self) -> usize {
        self.lock().unanswered
    }

    /// How many transactions have written payments since the start: with
    /// the payments counted by `payments_total`, how well they combine.
    pub fn transactions_committed(&self) -> u64 {
        self.lock().committed
    }

    pub fn answered(&self, requests: usize) {
        let mut queue = self.lock();
        queue.unanswered = queue.unanswered.saturating_sub(requests);
    }

    pub fn committed(&self) {
        self.lock().committed += 1;
        metrics::counter!("payment_transactions_total").increment(1);
    }

    /// A writer that stopped without emptying the queue (it panicked): the
    /// requests left must not wait for ever.
    pub fn writer_lost(&self) -> bool {
        let mut queue = self.lock();
        queue.writers -= 1;
        if !queue.waiting.is_empty() && queue.writers < self.writers_allowed {
            queue.writers += 1;
            true
        } else {
            false
        }
    }
}
