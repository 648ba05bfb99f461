//! The one place where a loan changes.
//!
//! Every operation that changes a loan — an approval, a payment (alone or
//! combined with others, valued today or earlier, prepaying or settling),
//! a reversal, and the daily job — goes through [`apply`] (or, for the
//! daily job's many loans at once, [`bring_up_to_date`]), which does, in
//! this order and nowhere else:
//!
//! 1. **lock** the loan (several loans: in id order, so no two operations
//!    deadlock);
//! 2. **load** the installment rows the event needs (and, for a replay,
//!    the loan's history);
//! 3. **bring it up to date**: the fees whose day has passed, the
//!    installments overdue, the status, as the daily job would;
//! 4. **apply the event**: one step appended to the stored state (a
//!    payment valued today), or a replay of the history from the approved
//!    schedule (a backdated payment, a reversal);
//! 5. **reconcile**: which rows and figures that changes ([`rows`]);
//! 6. **store** them ([`store`]);
//! 7. **announce** them: notifications and audit entries ([`announce`]).
//!
//! The result, [`Applied`], says what changed: the loan and its rows after
//! the event, the payment recorded or reversed, the fees charged or
//! waived, and every payment whose portions moved (before and after), so
//! that whatever must follow the money reads it from there.
//!
//! The installment rows and the loan's figures are a cache of
//! [`crate::ledger::replay`]; `verify` checks that they still agree.

pub mod announce;
pub mod load;
pub mod rows;
mod session;
pub mod store;
pub mod verify;

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use sea_orm::{DatabaseTransaction, DbErr, EntityTrait};
use uuid::Uuid;

use crate::audit::RequestMeta;
use crate::auth::actor::Actor;
use crate::clock::SharedClock;
use crate::db::batch::WriteBatch;
use crate::db::entities::{ExcessPolicy, LoanStatus, installment, loan, payment};
use crate::journal::posting::{MoneyEvent, entry_for};
use crate::journal::store::{EntryToPost, PostingDay};
use crate::ledger::LateFeeRule;
use crate::ledger::payoff::PayoffQuote;
use crate::loans::status::IllegalTransition;
use crate::money::{Money, Percent};
use crate::schedule::ScheduleError;

pub use load::{History, HistoryError, RowsNeeded};
pub use rows::{FeeChange, ReconcileError};
pub use store::BroughtUpToDateError;

use announce::Announcements;
use session::LoanSession;

/// What the pipeline needs from the service around it: the clock, the
/// calendar's time zone and the late-fee rule.
#[derive(Clone)]
pub struct ServicingContext {
    pub clock: SharedClock,
    pub timezone: Tz,
    pub late_fee: LateFeeRule,
}

impl ServicingContext {
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Today's date in the service time zone.
    pub fn today(&self) -> NaiveDate {
        crate::clock::local_date(self.now(), self.timezone)
    }
}

/// Who asks for a change, and the request it came in, for the audit trail
/// (no request for a scheduled job).
#[derive(Debug, Clone, Default)]
pub struct Requester {
    pub actor_id: Option<Uuid>,
    pub meta: Option<RequestMeta>,
}

impl Requester {
    pub fn new(actor: Actor, meta: &RequestMeta) -> Requester {
        Requester {
            actor_id: Some(actor.id),
            meta: Some(meta.clone()),
        }
    }
}

/// A change to a loan.
#[derive(Debug, Clone)]
pub enum Event {
    /// Approval of a pending loan: its schedule is generated and stored.
    Approve(Approval),
    /// A payment: valued today or earlier, with its excess policy.
    Pay(PaymentOrder),
    /// A posted payment reversed (it bounced): the loan is replayed
    /// without it.
    Reverse(Reversal),
    /// An overdue loan written off (a confirmed decision): brought up to
    /// date, then its unpaid principal moved to losses, for good.
    WriteOff(WriteOff),
    /// Nothing new: the loan replayed from its approved schedule with its
    /// history as it stands, so that its rows say what the rules say (an
    /// upgrade's `loan-tracker replay --all`: fees an earlier version
    /// charged by other rules are put right, audited).
    Replay,
}

impl Event {
    /// The installment rows the event works on.
    fn rows_needed(&self) -> RowsNeeded {
        match self {
            Event::Pay(order)
                if order.value_date.is_none() && order.excess == ExcessPolicy::NextInstallments =>
            {
                RowsNeeded::NotFullyPaid
            }
            _ => RowsNeeded::All,
        }
    }
}

/// What an approver decided.
#[derive(Debug, Clone)]
pub struct Approval {
    pub approver: Uuid,
    /// The rate; `None` keeps the rate quoted at application.
    pub annual_interest_rate: Option<Percent>,
    /// `None`: one month after the approval date.
    pub first_due_date: Option<NaiveDate>,
    /// The four-eyes decision this approval confirms, if any.
    pub decision: Option<DecisionRef>,
}

/// A confirmed four-eyes decision an event carries out: its audit entry
/// names it and who asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionRef {
    pub id: Uuid,
    pub requested_by: Uuid,
}

/// A write-off to make.
#[derive(Debug, Clone)]
pub struct WriteOff {
    /// Who confirmed it.
    pub by: Uuid,
    pub reason: String,
    pub decision: DecisionRef,
}

/// A payment to record.
#[derive(Debug, Clone)]
pub struct PaymentOrder {
    /// Who records it: the borrower, or staff on their behalf.
    pub payer: Actor,
    pub amount: Money,
    /// The day the money counts from; `None` for today.
    pub value_date: Option<NaiveDate>,
    pub excess: ExcessPolicy,
    pub idempotency_key: Option<String>,
}

/// A reversal to make.
#[derive(Debug, Clone)]
pub struct Reversal {
    pub payment_id: Uuid,
    pub reversed_by: Uuid,
    pub reason: String,
    /// The four-eyes decision this reversal confirms, if any.
    pub decision: Option<DecisionRef>,
}

pub use crate::ledger::Portions;

/// The current portions stored on a payment row.
pub fn portions_of_row(payment: &payment::Model) -> Portions {
    Portions {
        principal: Money::from_minor(payment.current_principal_minor),
        interest: Money::from_minor(payment.current_interest_minor),
        penalty: Money::from_minor(payment.current_penalty_minor),
    }
}

/// A payment whose portions an event changed: the one it recorded (from
/// nothing), the one it reversed (to nothing), or another one a replay
/// moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortionChange {
    pub payment_id: Uuid,
    pub before: Portions,
    pub after: Portions,
    /// Whether it is a recovery (booked whole, whatever its portions).
    pub recovery: bool,
}

/// Which event was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppliedKind {
    Approved,
    PaymentRecorded,
    PaymentReversed,
    WrittenOff,
    Replayed,
}

/// What an event did to a loan.
#[derive(Debug, Clone)]
pub struct Applied {
    pub kind: AppliedKind,
    /// The loan after it.
    pub loan: loan::Model,
    /// Its installment rows after it: every row, except after an ordinary
    /// payment (the rows that were not fully paid).
    pub rows: Vec<installment::Model>,
    /// The payment it recorded or reversed.
    pub payment: Option<payment::Model>,
    /// Every payment whose portions it changed.
    pub portions: Vec<PortionChange>,
    /// The fees it charged or waived (bringing the loan up to date first
    /// included).
    pub fees: Vec<FeeChange>,
}

/// Whether `reversed` may be reversed now: not already; not a payment
/// recorded before the loan was written off (what the write-off booked
/// never moves); not one a settlement followed (reverse that first).
pub fn check_reversal(
    loan: &loan::Model,
    reversed: &payment::Model,
    history: &History,
) -> Result<(), ServicingError> {
    if reversed.status == crate::db::entities::PaymentStatus::Reversed {
        return Err(ServicingError::AlreadyReversed);
    }
    if loan.status == LoanStatus::WrittenOff && !is_recovery(reversed) {
        return Err(ServicingError::RecordedBeforeWriteOff);
    }
    if history
        .settlement()
        .is_some_and(|settlement| settlement.id != reversed.id)
    {
        return Err(ServicingError::SettledAfter);
    }
    Ok(())
}

/// Whether `payment` is a recovery (its money booked whole to
/// recoveries): recorded while its loan was written off. Nothing leaves
/// `WRITTEN_OFF`, and the status a payment left its loan in is written
/// when it is recorded, under the loan's lock, so this is the order in
/// which the write-off and the payment really happened, not a comparison
/// of clocks.
pub fn is_recovery(payment: &payment::Model) -> bool {
    payment.loan_status_after == LoanStatus::WrittenOff
}

/// Why a change was refused, or failed.
#[derive(Debug, thiserror::Error)]
pub enum ServicingError {
    #[error("no such loan")]
    LoanNotFound,
    #[error("no such payment")]
    PaymentNotFound,
    /// Only APPROVED and OVERDUE loans take payments and have a payoff.
    #[error("the loan is {}", status.as_str())]
    NotActive { status: LoanStatus },
    #[error(transparent)]
    Transition(#[from] IllegalTransition),
    #[error("the first due date must be within one year of {today}")]
    FirstDueDate { today: NaiveDate },
    #[error("the value date is refused: {0}")]
    ValueDate(ValueDateRefusal),
    #[error("the payment is already reversed")]
    AlreadyReversed,
    /// Only an OVERDUE loan can be written off.
    #[error("the loan is {}, not OVERDUE", status.as_str())]
    NotOverdue { status: LoanStatus },
    /// A written-off loan takes payments only to its next installments.
    #[error("a written-off loan takes no prepayment")]
    ExcessOnWrittenOff,
    /// A payment recorded before a write-off cannot be reversed: what the
    /// write-off booked never moves.
    #[error("the payment was recorded before the loan was written off")]
    RecordedBeforeWriteOff,
    #[error("the loan was settled after this payment")]
    SettledAfter,
    #[error("without this payment the later ones would exceed what the loan owes")]
    LaterPaymentsWouldExceed,
    #[error("the amount is refused: {refusal}")]
    Amount {
        refusal: AmountRefusal,
        currency: String,
    },
    #[error(transparent)]
    Database(#[from] DbErr),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
    #[error("the schedule cannot be built: {0}")]
    Schedule(#[from] ScheduleError),
    /// What the ledger or the stored rows say cannot be (a bug).
    #[error("inconsistent: {0}")]
    Inconsistent(&'static str),
}

/// Why a payment's value date is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ValueDateRefusal {
    #[error("it is after today ({today})")]
    AfterToday { today: NaiveDate },
    #[error("it is before {earliest}, the start of the loan's first period")]
    BeforeTheLoan { earliest: NaiveDate },
    #[error("the books are closed through {through}")]
    InClosedPeriod { through: NaiveDate },
    /// Nothing before a write-off can be replayed any more.
    #[error("the loan was written off on {on}")]
    BeforeWriteOff { on: NaiveDate },
}

/// Why a payment's amount is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountRefusal {
    #[error("not a positive amount")]
    NotPositive,
    #[error("more than the outstanding {outstanding}")]
    ExceedsOutstanding { outstanding: Money },
    #[error("{excess} beyond what is due, with no installment open to prepay")]
    NothingToPrepay { excess: Money },
    #[error("{excess} beyond what is due, not below the open principal {limit}")]
    PrepaymentTooLarge { excess: Money, limit: Money },
    #[error("the open installments cannot be rescheduled: {0}")]
    Reschedule(ScheduleError),
    #[error("not today's payoff quote {}", .0.total)]
    NotTheQuote(PayoffQuote),
    #[error("the payments recorded after it could no longer be applied")]
    LaterPaymentsBreak,
}

/// Applies `event` to the loan `loan_id`, adding every write to `batch`
/// (which the caller executes before committing `transaction`, with any
/// writes of its own).
pub async fn apply(
    transaction: &DatabaseTransaction,
    batch: &mut WriteBatch,
    context: &ServicingContext,
    loan_id: Uuid,
    event: Event,
    requester: Requester,
) -> Result<Applied, ServicingError> {
    let mut results = apply_all(
        transaction,
        batch,
        context,
        vec![Change {
            loan_id,
            event,
            requester,
        }],
    )
    .await?;
    results.pop().unwrap_or(Err(ServicingError::Inconsistent(
        "an event went unanswered",
    )))
}

impl Applied {
    /// What the event moved, as the journal books it: the money paid out,
    /// the payment recorded or reversed, and every other payment whose
    /// portions it moved.
    pub fn money_events(&self, today: NaiveDate) -> Vec<MoneyEvent> {
        let own = self.payment.as_ref().map(|payment| payment.id);
        let mut events: Vec<MoneyEvent> = self.own_money_event(today).into_iter().collect();
        events.extend(
            self.portions
                .iter()
                // A recovery's entries are its whole amount, whatever its
                // portions: moving them books nothing.
                .filter(|change| Some(change.payment_id) != own && !change.recovery)
                .map(|change| MoneyEvent::Moved {
                    loan_id: self.loan.id,
                    payment_id: change.payment_id,
                    before: change.before,
                    after: change.after,
                }),
        );
        events
    }

    /// The event's own money: the loan paid out or written off, the
    /// payment recorded or reversed (a recovery on a written-off loan).
    fn own_money_event(&self, today: NaiveDate) -> Option<MoneyEvent> {
        let loan_id = self.loan.id;
        Some(match (self.kind, &self.payment) {
            (AppliedKind::Approved, _) => MoneyEvent::Disbursed {
                loan_id,
                principal: Money::from_minor(self.loan.principal_minor),
                on: today,
            },
            (AppliedKind::WrittenOff, _) => MoneyEvent::WrittenOff {
                loan_id,
                principal: Money::from_minor(self.loan.principal_written_off_minor),
            },
            (AppliedKind::PaymentRecorded, Some(payment)) if is_recovery(payment) => {
                MoneyEvent::Recovered {
                    loan_id,
                    payment_id: payment.id,
                    amount: Money::from_minor(payment.amount_minor),
                    value_date: payment.value_date,
                }
            }
            (AppliedKind::PaymentReversed, Some(payment)) if is_recovery(payment) => {
                MoneyEvent::RecoveryReversed {
                    loan_id,
                    payment_id: payment.id,
                    amount: Money::from_minor(payment.amount_minor),
                }
            }
            (AppliedKind::PaymentRecorded, Some(payment)) => MoneyEvent::Repaid {
                loan_id,
                payment_id: payment.id,
                amount: Money::from_minor(payment.amount_minor),
                portions: self
                    .portions_of(payment.id)
                    .map_or_else(Portions::default, |c| c.after),
                value_date: payment.value_date,
            },
            (AppliedKind::PaymentReversed, Some(payment)) => MoneyEvent::Reversed {
                loan_id,
                payment_id: payment.id,
                amount: Money::from_minor(payment.amount_minor),
                portions: self
                    .portions_of(payment.id)
                    .map_or_else(Portions::default, |c| c.before),
            },
            (AppliedKind::Replayed, _) | (_, None) => return None,
        })
    }

    fn portions_of(&self, payment_id: Uuid) -> Option<&PortionChange> {
        self.portions
            .iter()
            .find(|change| change.payment_id == payment_id)
    }
}

/// One change asked of one loan.
#[derive(Debug, Clone)]
pub struct Change {
    pub loan_id: Uuid,
    pub event: Event,
    pub requester: Requester,
}

/// Applies several changes, to one loan or many, in one transaction: the
/// loans are locked in id order, and each loan's changes apply in the
/// order given, each from where the one before left the loan. Each change
/// gets its own answer; a refused one writes nothing. The error fails the
/// whole transaction.
pub async fn apply_all(
    transaction: &DatabaseTransaction,
    batch: &mut WriteBatch,
    context: &ServicingContext,
    changes: Vec<Change>,
) -> Result<Vec<Result<Applied, ServicingError>>, ServicingError> {
    let mut answers: Vec<Option<Result<Applied, ServicingError>>> =
        changes.iter().map(|_| None).collect();
    let mut by_loan: BTreeMap<Uuid, Vec<usize>> = BTreeMap::new();
    for (index, change) in changes.iter().enumerate() {
        by_loan.entry(change.loan_id).or_default().push(index);
    }
    let loan_ids: Vec<Uuid> = by_loan.keys().copied().collect();
    // 1. Lock.
    let locked = load::lock_loans(transaction, &loan_ids).await?;
    // 2. Load: every row of a loan one of whose events needs them all.
    let needs_all: Vec<Uuid> = by_loan
        .iter()
        .filter(|(_, indexes)| {
            indexes
                .iter()
                .any(|index| changes[*index].event.rows_needed() == RowsNeeded::All)
        })
        .map(|(loan_id, _)| *loan_id)
        .collect();
    let open_only: Vec<Uuid> = loan_ids
        .iter()
        .filter(|id| !needs_all.contains(id))
        .copied()
        .collect();
    let mut rows = load::rows_of(transaction, &needs_all, RowsNeeded::All).await?;
    rows.append(&mut load::rows_of(transaction, &open_only, RowsNeeded::NotFullyPaid).await?);
    // The clock is read under the locks: operations on one loan then see
    // days and recording times in the order they take effect.
    let today = context.today();
    let mut changes: Vec<Option<Change>> = changes.into_iter().map(Some).collect();
    for loan in locked {
        let needed = if needs_all.contains(&loan.id) {
            RowsNeeded::All
        } else {
            RowsNeeded::NotFullyPaid
        };
        let loan_rows = rows.remove(&loan.id).unwrap_or_default();
        let indexes = by_loan.remove(&loan.id).unwrap_or_default();
        // 3. Bring up to date.
        let mut session = LoanSession::open(loan, loan_rows, needed, today, context)?;
        for index in indexes {
            let Some(change) = changes[index].take() else {
                continue;
            };
            // 4–5. Apply the event, reconcile.
            answers[index] = Some(
                session
                    .apply(transaction, context, change.event, change.requester)
                    .await,
            );
        }
        // 6–7. Store, announce.
        session.close(batch)?;
    }
    let answers: Vec<Result<Applied, ServicingError>> = answers
        .into_iter()
        .map(|answer| answer.unwrap_or(Err(ServicingError::LoanNotFound)))
        .collect();
    post_to_journal(batch, context, today, &answers)?;
    Ok(answers)
}

/// The journal entries of every change that went through, in the same
/// batch: what the books must say follows from what the loans now say.
fn post_to_journal(
    batch: &mut WriteBatch,
    context: &ServicingContext,
    today: NaiveDate,
    answers: &[Result<Applied, ServicingError>],
) -> Result<(), ServicingError> {
    let mut entries = Vec::new();
    for applied in answers.iter().flatten() {
        for event in applied.money_events(today) {
            let entry = entry_for(&event, today)
                .map_err(|_| ServicingError::Inconsistent("a journal entry would not balance"))?;
            if let Some(entry) = entry {
                entries.push(EntryToPost {
                    entry,
                    currency: applied.loan.currency.clone(),
                });
            }
        }
    }
    crate::journal::store::push(
        batch,
        entries,
        PostingDay {
            booking_date: today,
            posted_at: context.now(),
            slot: crate::journal::store::next_slot(),
        },
    );
    Ok(())
}

/// The loan a payment belongs to (read before locking it; the pipeline
/// reads the payment again under the loan's lock).
pub async fn loan_of_payment(
    transaction: &DatabaseTransaction,
    payment_id: Uuid,
) -> Result<Uuid, ServicingError> {
    payment::Entity::find_by_id(payment_id)
        .one(transaction)
        .await?
        .map(|payment| payment.loan_id)
        .ok_or(ServicingError::PaymentNotFound)
}

/// What the daily job did to one batch of loans.
#[derive(Debug, Default)]
pub struct BroughtUpToDate {
    pub installments_marked_overdue: u64,
    pub penalties_applied: u64,
    pub loans_marked_overdue: u64,
    pub notifications_written: u64,
}

/// The daily job: `loan_ids` locked (in id order), each brought up to
/// `as_of` exactly as an operation on it would be (the fees whose day
/// ended before it, the installments overdue, the status), with the
/// installments it can touch (not fully paid, due before `as_of`). Written
/// with a few set-based statements for the whole batch; announced as any
/// operation's catching up is.
pub async fn bring_up_to_date(
    transaction: &DatabaseTransaction,
    context: &ServicingContext,
    loan_ids: &[Uuid],
    as_of: NaiveDate,
    requester: Requester,
) -> Result<BroughtUpToDate, ServicingError> {
    let locked = load::lock_loans(transaction, loan_ids).await?;
    let mut rows = load::rows_of(transaction, loan_ids, RowsNeeded::PastDueUnpaid(as_of)).await?;
    let now = context.now();
    let mut outcome = BroughtUpToDate::default();
    let mut writes = Vec::new();
    let mut announcements = Announcements::default();
    for loan in locked.into_iter().filter(|loan| loan.status.is_active()) {
        let loan_rows = rows.remove(&loan.id).unwrap_or_default();
        let before: std::collections::HashMap<Uuid, installment::Model> =
            loan_rows.iter().map(|row| (row.id, row.clone())).collect();
        let session = LoanSession::open(
            loan,
            loan_rows,
            RowsNeeded::PastDueUnpaid(as_of),
            as_of,
            context,
        )?;
        let (row_writes, caught_up, counts) = session.caught_up(requester.actor_id);
        store::only_overdue_marks_and_fees(&row_writes, &before)
            .map_err(|_| ServicingError::Inconsistent("the daily job changed more than it may"))?;
        outcome.installments_marked_overdue += counts.installments_marked_overdue;
        outcome.penalties_applied += counts.penalties_applied;
        outcome.loans_marked_overdue += counts.loans_marked_overdue;
        writes.push(row_writes);
        announcements.extend(caught_up);
    }
    store::write_brought_up_to_date(transaction, &writes, now)
        .await
        .map_err(|error| match error {
            BroughtUpToDateError::Database(error) => ServicingError::Database(error),
            BroughtUpToDateError::Unexpected(_) => {
                ServicingError::Inconsistent("the daily job changed more than it may")
            }
        })?;
    outcome.notifications_written =
        crate::notifications::write_many_once(transaction, announcements.notices, now).await?;
    crate::audit::record_many(
        transaction,
        announcements.entries,
        requester.meta.as_ref(),
        now,
    )
    .await?;
    Ok(outcome)
}
