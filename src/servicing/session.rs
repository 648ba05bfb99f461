//! One locked loan while its changes are worked out: brought up to date
//! when it is opened, then each event applied from where the one before
//! left it (in memory), then closed: everything it did written once, net,
//! into the transaction's batch.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Utc};
use sea_orm::{ActiveValue::Set, DatabaseTransaction, EntityTrait, QuerySelect, QueryTrait};
use uuid::Uuid;

use super::announce::{self, Announcements, Attribution};
use super::load::{self, History, RowsNeeded};
use super::rows::{self, Reconciliation};
use super::store::{self, RowWrites};
use super::{
    AmountRefusal, Applied, AppliedKind, Approval, Event, PaymentOrder, PortionChange, Portions,
    Requester, Reversal, ServicingContext, ServicingError, ValueDateRefusal,
};
use crate::db::batch::WriteBatch;
use crate::db::entities::{
    ExcessPolicy, InstallmentStatus, LoanStatus, PaymentStatus, approved_installment, installment,
    loan, payment, payment_allocation,
};
use crate::ledger::replay::{LedgerError, LedgerState, Posting, replay};
use crate::ledger::{AllocationError, LateFeeRule, PaymentSplit};
use crate::money::Money;
use crate::policy;
use crate::schedule;

/// Counts of what bringing a loan up to date did, for the daily job.
#[derive(Debug, Default)]
pub(super) struct CatchUpCounts {
    pub installments_marked_overdue: u64,
    pub penalties_applied: u64,
    pub loans_marked_overdue: u64,
}

pub(super) struct LoanSession {
    /// The loan as it was locked.
    locked: loan::Model,
    /// The loan as the events so far leave it.
    loan: loan::Model,
    /// The rows loaded (`needed`), as the events so far leave them, in
    /// number order.
    rows: Vec<installment::Model>,
    needed: RowsNeeded,
    today: chrono::NaiveDate,
    timezone: chrono_tz::Tz,
    rule: LateFeeRule,
    changed: BTreeSet<Uuid>,
    inserted: BTreeSet<Uuid>,
    removed: Vec<Uuid>,
    /// What bringing the loan up to date did, written and announced in the
    /// name of the first event that goes through (and not at all if none
    /// does).
    caught_up: Reconciliation,
    approved_schedule: Vec<approved_installment::ActiveModel>,
    payment_inserts: Vec<payment::Model>,
    payment_updates: BTreeMap<Uuid, payment::ActiveModel>,
    allocations_rewritten: Vec<Uuid>,
    allocation_inserts: Vec<payment_allocation::ActiveModel>,
    announcements: Vec<(Announcements, Attribution)>,
    first_applied: Option<Attribution>,
    last_applied_at: Option<DateTime<Utc>>,
}

impl LoanSession {
    /// Opens `loan` (locked) with its `rows`, brought up to `day`. A loan
    /// that is not being repaid has nothing to bring up to date.
    pub fn open(
        loan: loan::Model,
        rows: Vec<installment::Model>,
        needed: RowsNeeded,
        day: chrono::NaiveDate,
        context: &ServicingContext,
    ) -> Result<LoanSession, ServicingError> {
        let rule = context.late_fee;
        let caught_up = if loan.status.is_active() {
            rows::bring_up_to_date(&loan, &rows, day, context.now(), rule)?
        } else {
            Reconciliation::unchanged(&loan, rows.clone(), day)
        };
        if !caught_up.inserted.is_empty() || !caught_up.removed.is_empty() {
            return Err(ServicingError::Inconsistent(
                "bringing a loan up to date changed its installments' numbers",
            ));
        }
        let mut session = LoanSession {
            locked: loan.clone(),
            loan,
            rows,
            needed,
            today: day,
            timezone: context.timezone,
            rule,
            changed: BTreeSet::new(),
            inserted: BTreeSet::new(),
            removed: Vec::new(),
            caught_up: caught_up.clone(),
            approved_schedule: Vec::new(),
            payment_inserts: Vec::new(),
            payment_updates: BTreeMap::new(),
            allocations_rewritten: Vec::new(),
            allocation_inserts: Vec::new(),
            announcements: Vec::new(),
            first_applied: None,
            last_applied_at: None,
        };
        session.merge(&caught_up);
        Ok(session)
    }

    /// Applies one event. Refused, it changes nothing of the session.
    pub async fn apply(
        &mut self,
        transaction: &DatabaseTransaction,
        context: &ServicingContext,
        event: Event,
        requester: Requester,
    ) -> Result<Applied, ServicingError> {
        let now = context.now();
        let by = Attribution {
            actor: requester.actor_id,
            meta: requester.meta,
            at: now,
        };
        let fees_before = self.caught_up.fees.clone();
        let outcome = match event {
            Event::Approve(approval) => self.approve(approval, now)?,
            Event::Pay(order) => self.pay(transaction, order, now).await?,
            Event::Reverse(reversal) => self.reverse(transaction, reversal, now).await?,
            Event::WriteOff(write_off) => self.write_off(write_off, now)?,
            Event::Replay => self.replay_history(transaction, now).await?,
        };
        let EventOutcome {
            kind,
            reconciliation,
            payment,
            portions,
            announcements,
        } = outcome;
        self.merge(&reconciliation);
        let mut fees = if self.first_applied.is_none() {
            fees_before
        } else {
            Vec::new()
        };
        fees.extend(reconciliation.fees.iter().cloned());
        self.first_applied.get_or_insert_with(|| by.clone());
        self.last_applied_at = Some(now);
        self.announcements.push((announcements, by));
        Ok(Applied {
            kind,
            loan: self.loan.clone(),
            rows: self.rows.clone(),
            payment,
            portions,
            fees,
        })
    }

    /// Folds a reconciliation's rows and loan into the session.
    fn merge(&mut self, reconciliation: &Reconciliation) {
        for id in &reconciliation.removed {
            self.rows.retain(|row| row.id != *id);
            self.changed.remove(id);
            if !self.inserted.remove(id) {
                self.removed.push(*id);
            }
        }
        let touched = reconciliation
            .changed
            .iter()
            .map(|index| (*index, false))
            .chain(reconciliation.inserted.iter().map(|index| (*index, true)));
        for (index, is_new) in touched {
            let Some(row) = reconciliation.rows.get(index) else {
                continue;
            };
            match self.rows.iter_mut().find(|stored| stored.id == row.id) {
                Some(stored) => *stored = row.clone(),
                None => self.rows.push(row.clone()),
            }
            if is_new && !self.removed.contains(&row.id) {
                self.inserted.insert(row.id);
            } else if !self.inserted.contains(&row.id) {
                self.removed.retain(|id| *id != row.id);
                self.changed.insert(row.id);
            }
        }
        self.rows.sort_by_key(|row| row.number);
        self.loan = reconciliation.loan.clone();
    }

    /// The writes of everything applied, added to `batch`; nothing when no
    /// event went through.
    pub fn close(self, batch: &mut WriteBatch) -> Result<(), ServicingError> {
        let (Some(first), Some(last_at)) = (self.first_applied.clone(), self.last_applied_at)
        else {
            return Ok(());
        };
        // Allocations go first (deletes), then the rows and the loan, then
        // the rows that name them.
        store::push_allocations_removed(batch, &self.allocations_rewritten);
        store::push_rows(batch, &self.row_writes(), last_at)?;
        if !self.approved_schedule.is_empty() {
            batch.insert(
                approved_installment::Entity::insert_many(self.approved_schedule.clone())
                    .into_query(),
            );
        }
        for payment in &self.payment_inserts {
            batch.insert(
                payment::Entity::insert(payment::ActiveModel::from(payment.clone())).into_query(),
            );
        }
        for update in self.payment_updates.into_values() {
            store::push_payment_update(batch, update)?;
        }
        store::push_allocations(batch, self.allocation_inserts);
        let caught_up = announce::of_reconciliation(&self.caught_up, first.actor);
        caught_up.push(batch, &first);
        for (announcements, by) in self.announcements {
            announcements.push(batch, &by);
        }
        Ok(())
    }

    /// For the daily job: what bringing the loan up to date writes and
    /// announces (in the job's name), with its counts.
    pub fn caught_up(self, actor: Option<Uuid>) -> (RowWrites, Announcements, CatchUpCounts) {
        let reconciliation = &self.caught_up;
        let counts = CatchUpCounts {
            installments_marked_overdue: reconciliation.newly_overdue.len() as u64,
            penalties_applied: reconciliation
                .fees
                .iter()
                .filter(|fee| fee.is_charged())
                .count() as u64,
            loans_marked_overdue: u64::from(
                reconciliation.loan.status == LoanStatus::Overdue
                    && reconciliation.previous_status != LoanStatus::Overdue,
            ),
        };
        let announcements = announce::of_reconciliation(reconciliation, actor);
        (self.row_writes(), announcements, counts)
    }

    fn row_writes(&self) -> RowWrites {
        let pick = |ids: &BTreeSet<Uuid>| {
            self.rows
                .iter()
                .filter(|row| ids.contains(&row.id))
                .cloned()
                .collect::<Vec<_>>()
        };
        RowWrites {
            removed: self.removed.clone(),
            changed: pick(&self.changed),
            inserted: pick(&self.inserted),
            loan_before: self.locked.clone(),
            loan_after: self.loan.clone(),
        }
    }
}

/// What one event worked out, before the session takes it in.
struct EventOutcome {
    kind: AppliedKind,
    reconciliation: Reconciliation,
    payment: Option<payment::Model>,
    portions: Vec<PortionChange>,
    announcements: Announcements,
}

// ---------------------------------------------------------------------------
// Approval
// ---------------------------------------------------------------------------

impl LoanSession {
    /// A pending loan approved: its schedule generated, stored as approved
    /// and as its installments, then brought up to today (a loan migrated
    /// in with a first due date in the past is overdue at once, with its
    /// late fees).
    fn approve(
        &mut self,
        approval: Approval,
        now: DateTime<Utc>,
    ) -> Result<EventOutcome, ServicingError> {
        let today = self.today;
        self.loan.status.transition(LoanStatus::Approved)?;
        if let Some(first_due_date) = approval.first_due_date
            && !schedule::first_due_date_allowed(first_due_date, today)
        {
            return Err(ServicingError::FirstDueDate { today });
        }
        let rate = match approval.annual_interest_rate {
            Some(rate) => rate,
            None => load::rate_of(&self.loan).map_err(load::HistoryError::from)?,
        };
        let (first_due_date, day_of_month) = match approval.first_due_date {
            Some(date) => (date, date.day()),
            None => (
                schedule::one_month_after(today)
                    .ok_or(ServicingError::Inconsistent("the calendar ends"))?,
                today.day(),
            ),
        };
        let term = u32::try_from(self.loan.term_months)
            .map_err(|_| ServicingError::Inconsistent("a negative term"))?;
        let planned = schedule::build_schedule(
            Money::from_minor(self.loan.principal_minor),
            rate,
            term,
            first_due_date,
            day_of_month,
        )?;
        let mut approved = self.loan.clone();
        approved.status = LoanStatus::Approved;
        approved.annual_interest_rate = rate.to_string();
        approved.installment_minor = planned.installment_amount.minor();
        approved.total_payable_minor = planned.total_payable().minor();
        approved.next_due_date = Some(first_due_date);
        approved.first_due_date = Some(first_due_date);
        approved.approved_by = Some(approval.approver);
        approved.approved_at = Some(now);
        let new_rows = self.store_as_approved(&approved, &planned, rate, now);
        // The new rows are stored as the rows brought up to today say.
        let mut reconciliation =
            rows::bring_up_to_date(&approved, &new_rows, today, now, self.rule)?;
        reconciliation.inserted = (0..reconciliation.rows.len()).collect();
        reconciliation.changed.clear();
        let mut announcements = announce::approved(
            &approved,
            rate,
            planned.installment_amount,
            planned.total_payable(),
            first_due_date,
            approval.approver,
            approval.decision,
        );
        announcements.extend(announce::of_reconciliation(
            &reconciliation,
            Some(approval.approver),
        ));
        Ok(EventOutcome {
            kind: AppliedKind::Approved,
            reconciliation,
            payment: None,
            portions: Vec::new(),
            announcements,
        })
    }

    /// The installment rows of `planned` for `loan`, each with a new id,
    /// which the schedule as approved (kept for replays, written with the
    /// session) remembers.
    fn store_as_approved(
        &mut self,
        loan: &loan::Model,
        planned: &schedule::Schedule,
        rate: crate::money::Percent,
        now: DateTime<Utc>,
    ) -> Vec<installment::Model> {
        let schedule_rows: Vec<crate::ledger::replay::ApprovedInstallment> = planned
            .installments
            .iter()
            .map(crate::ledger::replay::ApprovedInstallment::from)
            .collect();
        let state = LedgerState::approved(
            &schedule_rows,
            crate::ledger::replay::LoanTerms::approved(&schedule_rows, rate),
        );
        let new_rows: Vec<installment::Model> = state
            .installments
            .iter()
            .map(|row| rows::new_row(loan, row, Uuid::now_v7(), now))
            .collect();
        self.approved_schedule = new_rows
            .iter()
            .map(|row| approved_installment::ActiveModel {
                loan_id: Set(row.loan_id),
                number: Set(row.number),
                due_date: Set(row.due_date),
                principal_minor: Set(row.principal_minor),
                interest_minor: Set(row.interest_minor),
                installment_id: Set(Some(row.id)),
            })
            .collect();
        new_rows
    }
}

// ---------------------------------------------------------------------------
// Payments
// ---------------------------------------------------------------------------

/// A payment worked out against the loan: the ledger state with it, what
/// that changes of the rows (whose order its allocations' indexes follow),
/// and the other payments it moved (a backdated one).
struct PaymentWorkedOut {
    state: LedgerState,
    reconciliation: Reconciliation,
    others_moved: Vec<PortionChange>,
}

impl LoanSession {
    async fn pay(
        &mut self,
        transaction: &DatabaseTransaction,
        order: PaymentOrder,
        now: DateTime<Utc>,
    ) -> Result<EventOutcome, ServicingError> {
        let today = self.today;
        let value_date = self.check_payment(&order)?;
        if value_date < today
            && let Some(through) = closed_through(transaction)
                .await?
                .filter(|through| value_date <= *through)
        {
            return Err(ServicingError::ValueDate(
                ValueDateRefusal::InClosedPeriod { through },
            ));
        }
        let posting = Posting {
            id: Uuid::now_v7(),
            amount: order.amount,
            value_date,
            sequence: u64::MAX,
            excess: order.excess,
        };
        let PaymentWorkedOut {
            state,
            reconciliation,
            others_moved: mut portions,
        } = if value_date == today {
            self.append(transaction, &posting, now).await?
        } else {
            self.replay_with(transaction, posting, now).await?
        };
        let split = state
            .split_of(posting.id)
            .cloned()
            .ok_or(ServicingError::Inconsistent("the payment was not applied"))?;
        let payment = payment_row(&self.loan, &reconciliation, &posting, &split, &order, now);
        self.allocation_inserts.extend(store::allocation_rows(
            payment.id,
            &split,
            &reconciliation.rows,
        ));
        self.payment_inserts.push(payment.clone());
        portions.push(PortionChange {
            payment_id: payment.id,
            before: Portions::default(),
            after: Portions::from(&split),
            recovery: self.loan.status == LoanStatus::WrittenOff,
        });
        let mut announcements = Announcements::default();
        if order.excess == ExcessPolicy::Settlement {
            announcements.extend(announce::settled(
                &self.loan,
                &reconciliation.loan,
                payment.id,
                &split,
                order.payer.id,
            ));
        }
        announcements.extend(announce::of_reconciliation(
            &reconciliation,
            Some(order.payer.id),
        ));
        announcements.extend(announce::payment_recorded(
            &self.loan,
            &payment,
            order.payer.id,
        ));
        Ok(EventOutcome {
            kind: AppliedKind::PaymentRecorded,
            reconciliation,
            payment: Some(payment),
            portions,
            announcements,
        })
    }

    /// The checks of a payment against the loan as it stands: who may pay
    /// it, whether it takes payments, and the value date's bounds. Returns
    /// the value date.
    fn check_payment(&self, order: &PaymentOrder) -> Result<chrono::NaiveDate, ServicingError> {
        if !policy::may_see(order.payer, self.loan.user_id) {
            return Err(ServicingError::LoanNotFound);
        }
        let written_off = self.loan.status == LoanStatus::WrittenOff;
        if !self.loan.status.is_active() && !written_off
            || (written_off && order.excess == ExcessPolicy::Settlement)
        {
            return Err(ServicingError::NotActive {
                status: self.loan.status,
            });
        }
        if written_off && order.excess != ExcessPolicy::NextInstallments {
            return Err(ServicingError::ExcessOnWrittenOff);
        }
        let today = self.today;
        let value_date = order.value_date.unwrap_or(today);
        if let Some(on) = self.written_off_on().filter(|on| value_date < *on) {
            return Err(ServicingError::ValueDate(
                ValueDateRefusal::BeforeWriteOff { on },
            ));
        }
        if value_date > today {
            return Err(ServicingError::ValueDate(ValueDateRefusal::AfterToday {
                today,
            }));
        }
        if let Some(earliest) = self.earliest_value_date().filter(|day| value_date < *day) {
            return Err(ServicingError::ValueDate(ValueDateRefusal::BeforeTheLoan {
                earliest,
            }));
        }
        Ok(value_date)
    }

    /// The day the loan was written off, if it was.
    fn written_off_on(&self) -> Option<chrono::NaiveDate> {
        load::written_off_on(&self.loan, self.timezone)
    }

    /// `state` deciding no late fee from the write-off on: a written-off
    /// loan gets no more fees.
    fn with_fee_stop(&self, mut state: LedgerState) -> LedgerState {
        state.fees_until = self.written_off_on();
        state
    }

    /// The earliest value date a payment may have: the earlier of the
    /// approval date and the start of the first period (first due date
    /// minus one month, clamped to month end).
    fn earliest_value_date(&self) -> Option<chrono::NaiveDate> {
        let approved_on = self
            .loan
            .approved_at
            .map(|moment| crate::clock::local_date(moment, self.timezone));
        let first_period_starts = self
            .loan
            .first_due_date
            .and_then(|day| day.checked_sub_months(chrono::Months::new(1)));
        match (approved_on, first_period_starts) {
            (Some(a), Some(b)) => Some(Ord::min(a, b)),
            (a, b) => a.or(b),
        }
    }

    /// The common path, a payment valued today: one step from the rows as
    /// they stand. An ordinary payment needs only the installments not
    /// fully paid; a prepayment or a settlement takes every installment and
    /// the loan's terms, to reschedule or to quote.
    async fn append(
        &self,
        transaction: &DatabaseTransaction,
        posting: &Posting,
        now: DateTime<Utc>,
    ) -> Result<PaymentWorkedOut, ServicingError> {
        let (rows, terms) = if posting.excess == ExcessPolicy::NextInstallments {
            let open: Vec<installment::Model> = self
                .rows
                .iter()
                .filter(|row| row.status != InstallmentStatus::Paid)
                .cloned()
                .collect();
            (open, None)
        } else {
            self.require_every_row()?;
            let terms = load::current_terms(transaction, &self.loan, self.timezone).await?;
            (self.rows.clone(), Some(terms))
        };
        let state = self
            .with_fee_stop(rows::state_of(&rows, terms))
            .append(posting, self.today, self.rule)
            .map_err(|error| self.refused(error, posting.id))?;
        let reconciliation =
            rows::reconcile(&self.loan, &rows, &state, self.today, now, &HashMap::new())
                .map_err(rows::ReconcileError::from)?;
        Ok(PaymentWorkedOut {
            state,
            reconciliation,
            others_moved: Vec::new(),
        })
    }

    /// A backdated payment: the loan replayed from its approved schedule
    /// with the payment in its place; the other payments it moves are
    /// rewritten.
    async fn replay_with(
        &mut self,
        transaction: &DatabaseTransaction,
        posting: Posting,
        now: DateTime<Utc>,
    ) -> Result<PaymentWorkedOut, ServicingError> {
        let history = self.history(transaction).await?;
        let posting = Posting {
            sequence: history.payments.len() as u64,
            ..posting
        };
        let mut postings = history.postings();
        postings.push(posting);
        let state = replay(
            &history.approved,
            history.terms,
            &postings,
            self.today,
            self.rule,
        )
        .map_err(|error| self.refused(error, posting.id))?;
        let (reconciliation, portions) = self
            .rows_and_portions(transaction, &history, &state, now)
            .await?;
        Ok(PaymentWorkedOut {
            state,
            reconciliation,
            others_moved: portions,
        })
    }

    fn require_every_row(&self) -> Result<(), ServicingError> {
        if self.needed == RowsNeeded::All {
            Ok(())
        } else {
            Err(ServicingError::Inconsistent(
                "an event that needs every installment was given only some",
            ))
        }
    }

    /// The loan's history, for a replay. A replay must be the session's
    /// first event: the history is read from what is stored.
    async fn history(&self, transaction: &DatabaseTransaction) -> Result<History, ServicingError> {
        self.require_every_row()?;
        if self.last_applied_at.is_some() {
            return Err(ServicingError::Inconsistent(
                "a replay after another event in one transaction",
            ));
        }
        Ok(History::load(transaction, &self.loan, self.timezone).await?)
    }

    /// The payments of `history` whose portions or allocations `state`
    /// changes: their current portions updated, their allocations written
    /// again. A payment `state` no longer holds (one being reversed) is
    /// left to the caller.
    /// What a replay's `state` makes of the stored loan: its rows
    /// reconciled, and every payment whose portions it moves rewritten.
    async fn rows_and_portions(
        &mut self,
        transaction: &DatabaseTransaction,
        history: &History,
        state: &LedgerState,
        now: DateTime<Utc>,
    ) -> Result<(Reconciliation, Vec<PortionChange>), ServicingError> {
        let reconciliation = rows::reconcile(
            &self.loan,
            &self.rows,
            state,
            self.today,
            now,
            &history.installment_ids,
        )
        .map_err(rows::ReconcileError::from)?;
        let portions = self
            .rewrite_portions(transaction, &history.payments, state, &reconciliation.rows)
            .await?;
        Ok((reconciliation, portions))
    }

    async fn rewrite_portions(
        &mut self,
        transaction: &DatabaseTransaction,
        payments: &[payment::Model],
        state: &LedgerState,
        rows: &[installment::Model],
    ) -> Result<Vec<PortionChange>, ServicingError> {
        let ids: Vec<Uuid> = payments.iter().map(|payment| payment.id).collect();
        let stored = store::stored_allocations(transaction, &ids).await?;
        let mut changes = Vec::new();
        for payment in payments {
            let Some(split) = state.split_of(payment.id) else {
                continue;
            };
            let wanted = store::allocation_key(split, rows);
            if stored
                .get(&payment.id)
                .map_or(!wanted.is_empty(), |key| *key != wanted)
            {
                self.allocations_rewritten.push(payment.id);
                self.allocation_inserts
                    .extend(store::allocation_rows(payment.id, split, rows));
            }
            let (before, after) = (super::portions_of_row(payment), Portions::from(split));
            if before != after {
                self.payment_updates.insert(
                    payment.id,
                    payment::ActiveModel {
                        id: Set(payment.id),
                        current_principal_minor: Set(after.principal.minor()),
                        current_interest_minor: Set(after.interest.minor()),
                        current_penalty_minor: Set(after.penalty.minor()),
                        ..Default::default()
                    },
                );
                changes.push(PortionChange {
                    payment_id: payment.id,
                    before,
                    after,
                    recovery: super::is_recovery(payment),
                });
            }
        }
        Ok(changes)
    }

    /// A payment the ledger cannot take: more than the loan owes (at its
    /// value date, or for the payments after it), a prepayment leaving
    /// nothing to reschedule, a settlement that is not the quote.
    fn refused(&self, error: LedgerError, payment_id: Uuid) -> ServicingError {
        let refusal = match error {
            LedgerError::Allocation {
                id,
                source: AllocationError::ExceedsOutstanding { outstanding },
            } if id == payment_id => AmountRefusal::ExceedsOutstanding { outstanding },
            LedgerError::Allocation {
                source: AllocationError::NotPositive,
                ..
            } => AmountRefusal::NotPositive,
            LedgerError::ExcessTooLarge { id, excess, limit } if id == payment_id => {
                if limit.is_zero() {
                    AmountRefusal::NothingToPrepay { excess }
                } else {
                    AmountRefusal::PrepaymentTooLarge { excess, limit }
                }
            }
            LedgerError::Reschedule { id, source } if id == payment_id => {
                AmountRefusal::Reschedule(source)
            }
            LedgerError::SettlementAmount { id, quote } if id == payment_id => {
                AmountRefusal::NotTheQuote(quote)
            }
            LedgerError::Allocation { .. }
            | LedgerError::ExcessTooLarge { .. }
            | LedgerError::Reschedule { .. }
            | LedgerError::SettlementAmount { .. } => AmountRefusal::LaterPaymentsBreak,
            other => return ServicingError::Reconcile(other.into()),
        };
        ServicingError::Amount {
            refusal,
            currency: self.loan.currency.clone(),
        }
    }
}

/// The date the books are closed through, read shared: a close waits for
/// this transaction, and this one for a close in progress.
async fn closed_through(
    transaction: &DatabaseTransaction,
) -> Result<Option<chrono::NaiveDate>, ServicingError> {
    Ok(crate::db::entities::books::Entity::find_by_id(1)
        .lock_shared()
        .one(transaction)
        .await?
        .and_then(|row| row.closed_through))
}

/// The payment row: its portions as recorded and as they stand now, and
/// the loan's status and balance right after it.
fn payment_row(
    loan: &loan::Model,
    after: &Reconciliation,
    posting: &Posting,
    split: &PaymentSplit,
    order: &PaymentOrder,
    now: DateTime<Utc>,
) -> payment::Model {
    payment::Model {
        id: posting.id,
        loan_id: loan.id,
        user_id: loan.user_id,
        recorded_by: order.payer.id,
        amount_minor: order.amount.minor(),
        principal_minor: split.principal.minor(),
        interest_minor: split.interest.minor(),
        penalty_minor: split.penalty.minor(),
        currency: loan.currency.clone(),
        loan_status_after: after.loan.status,
        loan_outstanding_after_minor: after.outstanding().minor(),
        idempotency_key: order.idempotency_key.clone(),
        paid_at: now,
        created_at: now,
        value_date: posting.value_date,
        status: PaymentStatus::Posted,
        excess: order.excess,
        reversed_at: None,
        reversed_by: None,
        reversal_reason: None,
        current_principal_minor: split.principal.minor(),
        current_interest_minor: split.interest.minor(),
        current_penalty_minor: split.penalty.minor(),
    }
}

// ---------------------------------------------------------------------------
// Write-off
// ---------------------------------------------------------------------------

impl LoanSession {
    /// An overdue loan, just brought up to date, written off: its unpaid
    /// principal moved to losses. It stays owed (its installments keep
    /// what was unpaid) and takes payments as recoveries, but gets no more
    /// fees, and nothing before today can be replayed any more.
    fn write_off(
        &mut self,
        write_off: super::WriteOff,
        now: DateTime<Utc>,
    ) -> Result<EventOutcome, ServicingError> {
        self.require_every_row()?;
        if self.loan.status != LoanStatus::Overdue {
            return Err(ServicingError::NotOverdue {
                status: self.loan.status,
            });
        }
        self.loan.status.transition(LoanStatus::WrittenOff)?;
        let unpaid = self
            .rows
            .iter()
            .map(|row| row.figures().owed())
            .fold(crate::ledger::Owed::default(), |total, owed| total + owed);
        let mut loan = self.loan.clone();
        loan.status = LoanStatus::WrittenOff;
        loan.written_off_at = Some(now);
        loan.principal_written_off_minor = unpaid.principal.minor();
        loan.paid_before_write_off_minor = loan.total_paid_minor;
        loan.interest_paid_before_write_off_minor = loan.interest_paid_minor;
        loan.penalties_paid_before_write_off_minor = loan.penalties_paid_minor;
        let announcements = announce::written_off(&loan, unpaid, &write_off);
        Ok(EventOutcome {
            kind: AppliedKind::WrittenOff,
            reconciliation: Reconciliation::unchanged(&loan, self.rows.clone(), self.today),
            payment: None,
            portions: Vec::new(),
            announcements,
        })
    }
}

// ---------------------------------------------------------------------------
// Reversal
// ---------------------------------------------------------------------------

impl LoanSession {
    /// The payment row marked reversed, its portions zero and its
    /// allocations gone; the update is added to the session's writes.
    fn mark_reversed(
        &mut self,
        reversed: payment::Model,
        reversal: Reversal,
        now: DateTime<Utc>,
    ) -> payment::Model {
        self.allocations_rewritten.push(reversed.id);
        self.payment_updates.insert(
            reversed.id,
            payment::ActiveModel {
                id: Set(reversed.id),
                status: Set(PaymentStatus::Reversed),
                reversed_at: Set(Some(now)),
                reversed_by: Set(Some(reversal.reversed_by)),
                reversal_reason: Set(Some(reversal.reason.clone())),
                current_principal_minor: Set(0),
                current_interest_minor: Set(0),
                current_penalty_minor: Set(0),
                ..Default::default()
            },
        );
        payment::Model {
            status: PaymentStatus::Reversed,
            reversed_at: Some(now),
            reversed_by: Some(reversal.reversed_by),
            reversal_reason: Some(reversal.reason),
            current_principal_minor: 0,
            current_interest_minor: 0,
            current_penalty_minor: 0,
            ..reversed
        }
    }

    /// A posted payment reversed: it stays in the history, marked, and the
    /// loan is replayed without it.
    /// The loan replayed with its history as it stands: only what the
    /// stored rows and portions say that the rules do not changes.
    async fn replay_history(
        &mut self,
        transaction: &DatabaseTransaction,
        now: DateTime<Utc>,
    ) -> Result<EventOutcome, ServicingError> {
        let history = self.history(transaction).await?;
        let state = replay(
            &history.approved,
            history.terms,
            &history.postings(),
            self.today,
            self.rule,
        )
        .map_err(|error| {
            tracing::warn!(loan_id = %self.loan.id, %error, "the loan's history does not replay");
            ServicingError::Inconsistent("the loan's history does not replay")
        })?;
        let (reconciliation, portions) = self
            .rows_and_portions(transaction, &history, &state, now)
            .await?;
        let announcements = announce::of_reconciliation(&reconciliation, None);
        Ok(EventOutcome {
            kind: AppliedKind::Replayed,
            reconciliation,
            payment: None,
            portions,
            announcements,
        })
    }

    async fn reverse(
        &mut self,
        transaction: &DatabaseTransaction,
        reversal: Reversal,
        now: DateTime<Utc>,
    ) -> Result<EventOutcome, ServicingError> {
        // Read again under the loan's lock: a concurrent reversal has
        // finished.
        let reversed = payment::Entity::find_by_id(reversal.payment_id)
            .one(transaction)
            .await?
            .filter(|payment| payment.loan_id == self.loan.id)
            .ok_or(ServicingError::PaymentNotFound)?;
        let history = self.history(transaction).await?;
        super::check_reversal(&self.loan, &reversed, &history)?;
        let mut postings = history.postings();
        postings.retain(|posting| posting.id != reversed.id);
        let state = replay(
            &history.approved,
            history.terms,
            &postings,
            self.today,
            self.rule,
        )
        .map_err(|error| {
            tracing::warn!(payment_id = %reversed.id, %error, "reversal refused: the replay without it fails");
            ServicingError::LaterPaymentsWouldExceed
        })?;
        let (reconciliation, mut portions) = self
            .rows_and_portions(transaction, &history, &state, now)
            .await?;
        portions.push(PortionChange {
            payment_id: reversed.id,
            before: super::portions_of_row(&reversed),
            after: Portions::default(),
            recovery: super::is_recovery(&reversed),
        });
        let reversed_by = reversal.reversed_by;
        let decision = reversal.decision;
        let payment = self.mark_reversed(reversed, reversal, now);
        let mut announcements = announce::of_reconciliation(&reconciliation, Some(reversed_by));
        announcements.extend(announce::reversed(
            &self.loan,
            &payment,
            reversed_by,
            decision,
        ));
        Ok(EventOutcome {
            kind: AppliedKind::PaymentReversed,
            reconciliation,
            payment: Some(payment),
            portions,
            announcements,
        })
    }
}

#[cfg(test)]
mod tests {
    //! Bringing a loan up to a day, as the daily job does it: what it
    //! writes, announces and counts.

    use super::*;
    use crate::audit::AuditAction;
    use crate::clock::ManualClock;
    use crate::db::entities::NotificationKind;
    use crate::money::Percent;
    use chrono::NaiveDate;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    fn moment() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
            .expect("timestamp")
            .with_timezone(&Utc)
    }

    fn loan(status: LoanStatus) -> loan::Model {
        loan::Model {
            id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            status,
            currency: "USD".to_owned(),
            principal_minor: 100_000,
            annual_interest_rate: "12.0".to_owned(),
            term_months: 12,
            purpose: None,
            installment_minor: 8_885,
            total_payable_minor: 106_619,
            total_paid_minor: 0,
            penalties_minor: 0,
            penalties_paid_minor: 0,
            next_due_date: Some(date("2026-02-15")),
            first_due_date: Some(date("2026-02-15")),
            approved_by: None,
            approved_at: Some(moment()),
            rejected_by: None,
            rejected_at: None,
            rejection_reason: None,
            cancelled_at: None,
            paid_off_at: None,
            created_at: moment(),
            updated_at: moment(),
            principal_paid_minor: 0,
            interest_paid_minor: 0,
            written_off_at: None,
            principal_written_off_minor: 0,
            paid_before_write_off_minor: 0,
            interest_paid_before_write_off_minor: 0,
            penalties_paid_before_write_off_minor: 0,
        }
    }

    /// Installment 1 of `loan`: 10.00 interest and 78.85 principal, of
    /// which `paid` minor units of interest then principal are paid.
    fn installment(loan: &loan::Model, due: &str, paid: i64) -> installment::Model {
        let interest_paid = std::cmp::min(paid, 1_000);
        installment::Model {
            id: Uuid::now_v7(),
            loan_id: loan.id,
            user_id: loan.user_id,
            number: 1,
            due_date: date(due),
            principal_minor: 7_885,
            interest_minor: 1_000,
            penalty_minor: 0,
            principal_paid_minor: paid - interest_paid,
            interest_paid_minor: interest_paid,
            penalty_paid_minor: 0,
            status: if paid > 0 {
                InstallmentStatus::Partial
            } else {
                InstallmentStatus::Pending
            },
            overdue_since: None,
            penalty_applied_on: None,
            paid_at: None,
            created_at: moment(),
            updated_at: moment(),
        }
    }

    fn rule(grace_days: u32) -> LateFeeRule {
        LateFeeRule {
            percent: Percent::parse("5").expect("percent"),
            grace_days,
        }
    }

    /// What bringing `loan` with its one past-due `row` up to `as_of`
    /// writes, announces and counts.
    fn caught_up(
        loan: &loan::Model,
        row: &installment::Model,
        as_of: NaiveDate,
        rule: LateFeeRule,
    ) -> (RowWrites, Announcements, CatchUpCounts) {
        let context = ServicingContext {
            clock: std::sync::Arc::new(ManualClock::new(moment())),
            timezone: chrono_tz::Tz::UTC,
            late_fee: rule,
        };
        LoanSession::open(
            loan.clone(),
            vec![row.clone()],
            RowsNeeded::PastDueUnpaid(as_of),
            as_of,
            &context,
        )
        .expect("open")
        .caught_up(None)
    }

    #[test]
    fn an_installment_past_its_grace_is_marked_charged_and_notified_once() {
        let loan = loan(LoanStatus::Approved);
        let row = installment(&loan, "2026-02-15", 885);
        let as_of = date("2026-02-16");
        let (writes, announced, counts) = caught_up(&loan, &row, as_of, rule(0));
        // 5 % of the 80.00 of principal and interest still unpaid.
        assert_eq!(writes.changed.len(), 1);
        let marked = &writes.changed[0];
        assert_eq!(
            (
                marked.status,
                marked.penalty_minor,
                marked.penalty_applied_on,
                marked.overdue_since
            ),
            (InstallmentStatus::Overdue, 400, Some(as_of), Some(as_of))
        );
        assert_eq!(
            (writes.loan_after.status, writes.loan_after.penalties_minor),
            (LoanStatus::Overdue, 400)
        );
        let kinds: Vec<_> = announced.notices.iter().map(|n| n.kind).collect();
        assert_eq!(
            kinds,
            vec![
                NotificationKind::PaymentOverdue,
                NotificationKind::PenaltyApplied
            ]
        );
        assert_eq!(
            announced.notices[0].message,
            "Installment #1 of your loan was due on 2026-02-15 and is overdue: 84.00 USD is still owed."
        );
        assert_eq!(
            announced.notices[1].dedup_key.as_deref(),
            Some(format!("penalty:{}", row.id).as_str())
        );
        let actions: Vec<_> = announced.entries.iter().map(|a| a.action).collect();
        assert_eq!(
            actions,
            vec![AuditAction::PenaltyApplied, AuditAction::LoanOverdue]
        );
        assert_eq!(
            announced.entries[0].details,
            serde_json::json!({ "installmentNumber": 1, "previous": "0.00", "penalty": "4.00" })
        );
        assert_eq!(
            (
                counts.installments_marked_overdue,
                counts.penalties_applied,
                counts.loans_marked_overdue
            ),
            (1, 1, 1)
        );
    }

    #[test]
    fn within_the_grace_period_it_is_marked_but_not_charged() {
        let loan = loan(LoanStatus::Approved);
        let row = installment(&loan, "2026-02-15", 0);
        let (writes, announced, counts) = caught_up(&loan, &row, date("2026-02-18"), rule(3));
        let marked = &writes.changed[0];
        assert_eq!(
            (
                marked.status,
                marked.penalty_minor,
                marked.penalty_applied_on
            ),
            (InstallmentStatus::Overdue, 0, None)
        );
        assert_eq!(writes.loan_after.status, LoanStatus::Overdue);
        assert_eq!(announced.notices.len(), 1);
        assert_eq!(counts.penalties_applied, 0);
    }

    #[test]
    fn what_was_already_marked_and_charged_is_left_alone() {
        let loan = loan(LoanStatus::Overdue);
        let mut row = installment(&loan, "2026-02-15", 0);
        row.status = InstallmentStatus::Overdue;
        row.overdue_since = Some(date("2026-02-16"));
        row.penalty_applied_on = Some(date("2026-02-16"));
        row.penalty_minor = 444;
        let loan = loan::Model {
            penalties_minor: 444,
            ..loan
        };
        let (writes, announced, _) = caught_up(&loan, &row, date("2026-03-20"), rule(0));
        assert!(writes.changed.is_empty());
        assert!(!super::super::rows::loan_changed(
            &writes.loan_before,
            &writes.loan_after
        ));
        assert!(announced.is_empty());
    }

    #[test]
    fn loans_no_longer_being_repaid_are_left_alone() {
        let loan = loan(LoanStatus::Paid);
        let row = installment(&loan, "2026-02-15", 0);
        let (writes, announced, _) = caught_up(&loan, &row, date("2026-03-20"), rule(0));
        assert!(writes.changed.is_empty());
        assert!(announced.is_empty());
    }

    #[test]
    fn a_zero_percent_fee_is_no_fee() {
        let loan = loan(LoanStatus::Approved);
        let row = installment(&loan, "2026-02-15", 0);
        let free = LateFeeRule {
            percent: Percent::zero(),
            grace_days: 0,
        };
        let as_of = date("2026-02-20");
        let (writes, announced, counts) = caught_up(&loan, &row, as_of, free);
        let marked = &writes.changed[0];
        assert_eq!(
            (marked.penalty_minor, marked.penalty_applied_on),
            (0, Some(as_of))
        );
        let kinds: Vec<_> = announced.notices.iter().map(|n| n.kind).collect();
        assert_eq!(kinds, vec![NotificationKind::PaymentOverdue]);
        assert_eq!(counts.penalties_applied, 0);
    }
}
