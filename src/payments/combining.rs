//! Ordinary payments, written several to a transaction.
//!
//! An ordinary payment (valued today, excess to the next installments) is
//! the one borrowers send, and they send it in bursts: a payday, an app
//! that retries, a lender's collection run. Alone, each one costs a durable
//! commit, and the payments of one loan queue on its lock for the whole of
//! it, the flush of the commit included. So a request joins a queue
//! ([`super::queue`]), and a writer takes what is queued (up to a limit)
//! into one transaction: it claims their idempotency keys, then hands the
//! payments to the servicing pipeline, which locks their loans in id order
//! (as the overdue job does, so the two cannot deadlock) and works them out
//! one after another in the order they arrived, each from the state the one
//! before left; everything is written in one batch and committed once.
//! Every request gets its own answer: its payment, or the refusal it would
//! have had alone, which writes nothing.
//!
//! Nothing waits for company. A request that finds fewer writers at work
//! than allowed starts one, so a lone payment goes straight through; under
//! load the queue fills while the writers are committing. If a combined
//! transaction fails, its payments are written again one at a time, so that
//! one payment's failure is never another's.

use std::collections::BTreeSet;

use tokio::sync::oneshot;
use uuid::Uuid;

use super::domain::{PaymentError, PaymentReply, PaymentRequest};
use super::idempotency;
use super::queue::{Job, Queued};
use super::recording;
use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::auth::actor::Actor;
use crate::cache::CacheKind;
use crate::db::batch::WriteBatch;
use crate::servicing::{self, Change, Event, Requester};

/// Records an ordinary payment: valued today, its excess to the next
/// installments.
pub async fn record(
    state: &AppState,
    actor: Actor,
    meta: &RequestMeta,
    request: PaymentRequest,
) -> Result<PaymentReply, PaymentError> {
    debug_assert!(request.is_ordinary());
    let (answer, answered) = oneshot::channel();
    let queued = Queued {
        job: Job {
            actor,
            meta: meta.clone(),
            request,
        },
        answer,
    };
    if state.payment_queue.enqueue(queued) {
        tokio::spawn(write_queued(state.clone()));
    }
    answered.await.map_err(|_| PaymentError::WriterLost)?
}

/// A writer: takes and writes payments until the queue is empty. It runs as
/// a task of its own, so a client that hangs up cancels nobody's payment.
async fn write_queued(state: AppState) {
    let mut slot = WriterSlot {
        state: &state,
        released: false,
    };
    loop {
        let taken = state.payment_queue.take_next();
        if taken.is_empty() {
            slot.released = true;
            return;
        }
        write_together(&state, taken).await;
    }
}

/// One of the queue's writer slots, held while a writer works: if the
/// writer stops before finding the queue empty (it panicked), the slot is
/// handed to a new writer, so the requests left do not wait for ever.
struct WriterSlot<'a> {
    state: &'a AppState,
    released: bool,
}

impl Drop for WriterSlot<'_> {
    fn drop(&mut self) {
        if !self.released
            && self.state.payment_queue.writer_lost()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(write_queued(self.state.clone()));
        }
    }
}

async fn write_together(state: &AppState, taken: Vec<Queued>) {
    let (jobs, answers): (Vec<Job>, Vec<_>) = taken
        .into_iter()
        .map(|queued| (queued.job, queued.answer))
        .unzip();
    let outcomes = match in_one_transaction(state, &jobs).await {
        Ok(outcomes) => outcomes,
        Err(error) if jobs.len() == 1 => vec![Err(error)],
        Err(error) => {
            tracing::warn!(%error, payments = jobs.len(), "combined payments failed; writing them one at a time");
            let mut outcomes = Vec::with_capacity(jobs.len());
            for job in &jobs {
                outcomes.push(
                    match in_one_transaction(state, std::slice::from_ref(job)).await {
                        Ok(mut alone) => alone.pop().unwrap_or(Err(PaymentError::WriterLost)),
                        Err(error) => Err(error),
                    },
                );
            }
            outcomes
        }
    };
    let requests = answers.len();
    for (answer, outcome) in answers.into_iter().zip(outcomes) {
        // A client that hung up no longer waits for its answer.
        let _ = answer.send(outcome);
    }
    state.payment_queue.answered(requests);
}

type Answer = Result<PaymentReply, PaymentError>;

/// Claims the jobs' idempotency keys, in one order, so that two writers
/// claiming overlapping keys wait for each other instead of deadlocking.
/// A key already answered (or used for another request) answers its job;
/// returns the jobs whose keys are newly claimed.
async fn claim_keys(
    state: &AppState,
    transaction: &sea_orm::DatabaseTransaction,
    jobs: &[Job],
    answers: &mut [Option<Answer>],
) -> Result<Vec<usize>, PaymentError> {
    let mut keyed: Vec<(Uuid, &str, usize)> = jobs
        .iter()
        .enumerate()
        .filter_map(|(index, job)| {
            let key = job.request.idempotency_key.as_deref()?;
            Some((job.actor.id, key, index))
        })
        .collect();
    keyed.sort_unstable();
    let mut claimed = Vec::new();
    for (_, _, index) in keyed {
        let job = &jobs[index];
        match recording::claim_key(transaction, state.now(), job.actor, &job.request).await? {
            Some(answer) => answers[index] = Some(answer),
            None => claimed.push(index),
        }
    }
    Ok(claimed)
}

/// Writes `jobs` in one transaction: the answer to each, in order, or the
/// error that failed the transaction.
async fn in_one_transaction(state: &AppState, jobs: &[Job]) -> Result<Vec<Answer>, PaymentError> {
    let transaction = state.db.begin_write().await?;
    let mut answers: Vec<Option<Answer>> = jobs.iter().map(|_| None).collect();

    let claimed = claim_keys(state, &transaction, jobs, &mut answers).await?;
    let going_ahead: Vec<usize> = (0..jobs.len())
        .filter(|index| answers[*index].is_none())
        .collect();
    let changes = going_ahead
        .iter()
        .map(|index| {
            let job = &jobs[*index];
            Change {
                loan_id: job.request.loan_id,
                event: Event::Pay(recording::order_of(&job.request, job.actor)),
                requester: Requester::new(job.actor, &job.meta),
            }
        })
        .collect();
    let mut batch = WriteBatch::for_connection(&transaction);
    let results =
        servicing::apply_all(&transaction, &mut batch, &state.servicing(), changes).await?;
    let mut paid = Vec::new();
    for (index, result) in going_ahead.into_iter().zip(results) {
        let job = &jobs[index];
        answers[index] = Some(match result {
            Ok(applied) => {
                paid.push((index, applied.loan.currency.clone()));
                // A payment that cannot be answered is not committed.
                Ok(recording::reply(
                    &mut batch,
                    job.actor,
                    &job.request,
                    applied,
                )?)
            }
            Err(refusal) => Err(refusal.into()),
        });
    }
    // A refused payment leaves its key free, as if it had never come.
    for index in claimed {
        if let (Some(Err(_)), Some(key)) = (&answers[index], &jobs[index].request.idempotency_key) {
            idempotency::push_release(&mut batch, jobs[index].actor.id, key);
        }
    }
    batch.execute(&transaction).await?;
    transaction.commit().await?;
    state.payment_queue.committed();

    let changed_loans: Vec<Uuid> = paid
        .iter()
        .map(|(index, _)| jobs[*index].request.loan_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    state
        .cache
        .invalidate_all_of(CacheKind::Loan, &changed_loans)
        .await;
    for (index, currency) in &paid {
        recording::count_payment(currency, jobs[*index].request.amount);
    }
    Ok(answers
        .into_iter()
        .map(|answer| answer.unwrap_or(Err(PaymentError::WriterLost)))
        .collect())
}
