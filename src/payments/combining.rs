//! Ordinary payments, written several to a transaction.
//!
//! An ordinary payment (valued today, excess to the next installments) is
//! the one borrowers send, and they send it in bursts: a payday, an app
//! that retries, a lender's collection run. Alone, each one costs a durable
//! commit, and the payments of one loan queue on its lock for the whole of
//! it, the flush of the commit included. So a request joins a queue, and a
//! writer takes what is queued (up to a limit) into
//! one transaction: it claims their idempotency keys, locks their loans in
//! id order (as the overdue job does, so the two cannot deadlock), works
//! the payments out one after another in the order they arrived, each from
//! the state the one before left, writes them in one batch and commits
//! once. Every request gets its own answer: its payment, or the refusal it
//! would have had alone, which writes nothing.
//!
//! Nothing waits for company. A request that finds fewer writers at work
//! than allowed starts one, so a lone payment goes straight through; under
//! load the queue fills while the writers are committing. If a combined
//! transaction fails, its payments are written again one at a time, so that
//! one payment's failure is never another's.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{EntityTrait, QueryTrait};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::idempotency;
use super::service::{self, PaymentReply, PaymentRequest, RecordedPayment};
use super::views::PaymentView;
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::cache::CacheKind;
use crate::db::batch::WriteBatch;
use crate::db::entities::{ExcessPolicy, InstallmentStatus, installment, loan, payment};
use crate::http::client::RequestMeta;
use crate::http::error::{AppError, AppResult};
use crate::http::format::RawJson;
use crate::ledger::LateFeeRule;
use crate::ledger::replay::Posting;
use crate::policy;
use crate::servicing::{self, Reconciliation};
use axum::http::StatusCode;

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
struct Queued {
    job: Job,
    answer: oneshot::Sender<AppResult<PaymentReply>>,
}

struct Job {
    actor: Actor,
    meta: RequestMeta,
    request: PaymentRequest,
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
    fn enqueue(&self, queued: Queued) -> bool {
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
    fn take_next(&self) -> Vec<Queued> {
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

    fn answered(&self, requests: usize) {
        let mut queue = self.lock();
        queue.unanswered = queue.unanswered.saturating_sub(requests);
    }

    fn committed(&self) {
        self.lock().committed += 1;
        metrics::counter!("payment_transactions_total").increment(1);
    }

    /// A writer that stopped without emptying the queue (it panicked): the
    /// requests left must not wait for ever.
    fn writer_lost(&self) -> bool {
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

/// Records an ordinary payment: valued today, its excess to the next
/// installments.
pub async fn record(
    state: &AppState,
    actor: Actor,
    meta: &RequestMeta,
    request: PaymentRequest,
) -> AppResult<PaymentReply> {
    debug_assert!(request.value_date.is_none() && request.excess == ExcessPolicy::NextInstallments);
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
    answered.await.map_err(|_| {
        AppError::internal(anyhow::anyhow!(
            "the payment's writer stopped before answering"
        ))
    })?
}

/// A writer: takes and writes payments until the queue is empty. It runs as
/// a task of its own, so a client that hangs up cancels nobody's payment.
async fn write_queued(state: AppState) {
    let mut shift = Shift {
        state: &state,
        over: false,
    };
    loop {
        let taken = state.payment_queue.take_next();
        if taken.is_empty() {
            shift.over = true;
            return;
        }
        write_together(&state, taken).await;
    }
}

/// A writer's time at work; if it ends other than by finding the queue
/// empty, the writer's place is handed on.
struct Shift<'a> {
    state: &'a AppState,
    over: bool,
}

impl Drop for Shift<'_> {
    fn drop(&mut self) {
        if !self.over
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
                        Ok(mut alone) => alone.pop().unwrap_or_else(|| {
                            Err(AppError::internal(anyhow::anyhow!(
                                "a payment went unanswered"
                            )))
                        }),
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

/// Writes `jobs` in one transaction: the answer to each, in order, or the
/// error that failed the transaction.
async fn in_one_transaction(
    state: &AppState,
    jobs: &[Job],
) -> AppResult<Vec<AppResult<PaymentReply>>> {
    let transaction = state.db.begin_write().await?;
    let mut answers: Vec<Option<AppResult<PaymentReply>>> = jobs.iter().map(|_| None).collect();

    // Keys first, in one order, so that two writers claiming overlapping
    // keys wait for each other instead of deadlocking.
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
        match service::claim_key(&transaction, state, job.actor, &job.request).await? {
            Some(answer) => answers[index] = Some(answer),
            None => claimed.push(index),
        }
    }

    let mut by_loan: BTreeMap<Uuid, Vec<usize>> = BTreeMap::new();
    for (index, job) in jobs.iter().enumerate() {
        if answers[index].is_none() {
            by_loan.entry(job.request.loan_id).or_default().push(index);
        }
    }
    let loan_ids: Vec<Uuid> = by_loan.keys().copied().collect();
    let mut locked = servicing::lock_many_with_unpaid(&transaction, &loan_ids).await?;
    // The clock is read under the locks, as for a payment alone.
    let today = state.today();
    let rule = state.config.late_fee_rule();
    let mut batch = WriteBatch::for_connection(&transaction);
    let mut paid_loans = Vec::new();
    for (loan_id, indexes) in by_loan {
        let Some((loan, rows)) = locked.remove(&loan_id) else {
            for index in indexes {
                answers[index] = Some(Err(AppError::NotFound("Loan")));
            }
            continue;
        };
        if !loan.status.is_active() {
            // Nothing to bring up to date, nothing to pay: each request
            // gets the refusal it would have had alone.
            for index in indexes {
                let refusal = match service::check_takes_payments(&loan) {
                    Err(refusal) if policy::may_see(jobs[index].actor, loan.user_id) => refusal,
                    _ => AppError::NotFound("Loan"),
                };
                answers[index] = Some(Err(refusal));
            }
            continue;
        }
        let mut account = Account::open(loan, rows, today, state, rule)?;
        for index in indexes {
            let job = &jobs[index];
            let answer = account.pay(state, job, &mut batch);
            answers[index] = Some(answer);
        }
        if account.close(&mut batch)? {
            paid_loans.push((loan_id, account.loan.currency.clone()));
        }
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

    let changed_loans: Vec<Uuid> = paid_loans.iter().map(|(loan_id, _)| *loan_id).collect();
    state
        .cache
        .invalidate_all_of(CacheKind::Loan, &changed_loans)
        .await;
    let answers: Vec<AppResult<PaymentReply>> = answers
        .into_iter()
        .map(|answer| {
            answer.unwrap_or_else(|| {
                Err(AppError::internal(anyhow::anyhow!(
                    "a payment went unanswered"
                )))
            })
        })
        .collect();
    for (job, answer) in jobs.iter().zip(&answers) {
        if answer.as_ref().is_ok_and(|reply| !reply.replayed)
            && let Some((_, currency)) =
                paid_loans.iter().find(|(id, _)| *id == job.request.loan_id)
        {
            service::count_payment(currency, job.request.amount);
        }
    }
    Ok(answers)
}

/// One locked loan of a combined transaction, as its payments leave it.
struct Account {
    /// The loan as it was locked.
    locked: loan::Model,
    /// The loan brought up to today, before any payment: written (and
    /// announced) only if a payment goes through.
    up_to_date: Reconciliation,
    loan: loan::Model,
    /// The installments that were open when the loan was locked, as they
    /// now stand.
    rows: Vec<installment::Model>,
    /// Indexes into `rows` of those that changed.
    changed: BTreeSet<usize>,
    /// Who made the first payment that went through, and when: the
    /// bringing up to date is announced in their name, as it would have
    /// been alone.
    first_payer: Option<(Actor, RequestMeta, DateTime<Utc>)>,
    /// When the last payment that went through was recorded.
    last_paid_at: Option<DateTime<Utc>>,
    today: NaiveDate,
    rule: LateFeeRule,
}

impl Account {
    fn open(
        loan: loan::Model,
        rows: Vec<installment::Model>,
        today: NaiveDate,
        state: &AppState,
        rule: LateFeeRule,
    ) -> AppResult<Account> {
        let up_to_date = servicing::up_to_date(&loan, &rows, today, state.now(), rule)
            .map_err(AppError::internal)?;
        if !up_to_date.inserted.is_empty() || !up_to_date.removed.is_empty() {
            return Err(AppError::internal(anyhow::anyhow!(
                "bringing a loan up to date changed its installments' numbers"
            )));
        }
        Ok(Account {
            loan: up_to_date.loan.clone(),
            rows: up_to_date.rows.clone(),
            changed: up_to_date.changed.iter().copied().collect(),
            locked: loan,
            up_to_date,
            first_payer: None,
            last_paid_at: None,
            today,
            rule,
        })
    }

    /// One payment, from where the payments before it left the loan, as
    /// it would go alone: the same checks in the same order, the same
    /// figures, the same rows written.
    fn pay(
        &mut self,
        state: &AppState,
        job: &Job,
        batch: &mut WriteBatch,
    ) -> AppResult<PaymentReply> {
        let Job {
            actor,
            meta,
            request,
        } = job;
        if !policy::may_see(*actor, self.loan.user_id) {
            return Err(AppError::NotFound("Loan"));
        }
        service::check_takes_payments(&self.loan)?;
        let now = state.now();
        let posting = Posting {
            id: Uuid::now_v7(),
            amount: request.amount,
            value_date: self.today,
            sequence: u64::MAX,
            excess: ExcessPolicy::NextInstallments,
        };
        // What a transaction of its own would read: the installments not
        // fully paid.
        let open: Vec<usize> = (0..self.rows.len())
            .filter(|index| self.rows[*index].status != InstallmentStatus::Paid)
            .collect();
        let open_rows: Vec<installment::Model> =
            open.iter().map(|index| self.rows[*index].clone()).collect();
        let ledger = servicing::state_of(&open_rows, None)
            .append(&posting, self.today, self.rule)
            .map_err(|error| service::refused_amount(error, posting.id, &self.loan))?;
        let split = service::applied_split(&ledger, posting.id)?;
        let reconciliation = servicing::reconcile(&self.loan, &open_rows, &ledger, self.today, now)
            .map_err(AppError::internal)?;
        if !reconciliation.inserted.is_empty() || !reconciliation.removed.is_empty() {
            return Err(AppError::internal(anyhow::anyhow!(
                "an ordinary payment changed the installments' numbers"
            )));
        }
        let recorded = RecordedPayment {
            state: ledger,
            reconciliation,
            id: posting.id,
            value_date: posting.value_date,
            split,
            allocations_written_by_replay: false,
        };
        let payment = service::payment_row(&self.loan, &recorded, request, *actor, now);
        let body = RawJson::of(&PaymentView::from(payment.clone())).map_err(AppError::internal)?;

        if let Some(key) = &request.idempotency_key {
            idempotency::push_response(batch, actor.id, key, StatusCode::CREATED, &body)?;
        }
        // Nothing below can refuse the payment: it now counts.
        batch.insert(
            payment::Entity::insert(payment::ActiveModel::from(payment.clone())).into_query(),
        );
        service::push_allocations(batch, &payment, &recorded);
        servicing::announce(
            batch,
            &recorded.reconciliation,
            Some(actor.id),
            Some(meta),
            now,
        );
        service::announce_payment(batch, &self.loan, &payment, *actor, meta, now);
        let reconciliation = recorded.reconciliation;
        for (open_index, row) in reconciliation
            .changed
            .iter()
            .filter_map(|index| Some((*open.get(*index)?, reconciliation.rows.get(*index)?)))
        {
            self.rows[open_index] = row.clone();
            self.changed.insert(open_index);
        }
        self.loan = reconciliation.loan;
        self.first_payer
            .get_or_insert_with(|| (*actor, meta.clone(), now));
        self.last_paid_at = Some(now);
        Ok(PaymentReply {
            status: StatusCode::CREATED,
            body,
            replayed: false,
        })
    }

    /// Adds the loan's and its installments' final rows to `batch`, and
    /// what bringing it up to date announces; nothing if no payment went
    /// through. True if one did.
    fn close(&self, batch: &mut WriteBatch) -> AppResult<bool> {
        let (Some((actor, meta, first_paid_at)), Some(last_paid_at)) =
            (&self.first_payer, self.last_paid_at)
        else {
            return Ok(false);
        };
        let net = Reconciliation {
            rows: self.rows.clone(),
            changed: self.changed.iter().copied().collect(),
            inserted: Vec::new(),
            removed: Vec::new(),
            fees: Vec::new(),
            newly_overdue: Vec::new(),
            loan: self.loan.clone(),
            previous_status: self.locked.status,
            today: self.today,
        };
        servicing::store(batch, &self.locked, &net, last_paid_at)?;
        servicing::announce(
            batch,
            &self.up_to_date,
            Some(actor.id),
            Some(meta),
            *first_paid_at,
        );
        Ok(true)
    }
}
