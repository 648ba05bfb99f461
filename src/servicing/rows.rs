//! Between stored rows and the ledger, with no I/O: the ledger's view of
//! stored installment rows ([`state_of`]), and what storing a ledger state
//! over them changes ([`reconcile`]): rows changed, added or removed, fees
//! charged or waived, installments newly overdue, and the loan's figures
//! and status.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::db::entities::{InstallmentStatus, LoanStatus, installment, loan};
use crate::ledger::replay::{InstallmentState, LedgerError, LedgerState, LoanTerms};
use crate::ledger::{InstallmentFigures, LateFeeRule, Owed, loan_status};
use crate::loans::status::IllegalTransition;
use crate::money::Money;

/// The ledger's view of stored installment rows (in number order): their
/// figures, and whether each one's fee has been decided. `terms` are needed
/// only for a prepayment, which must then be given every row.
pub fn state_of(rows: &[installment::Model], terms: Option<LoanTerms>) -> LedgerState {
    LedgerState {
        installments: rows
            .iter()
            .map(|row| {
                let figures = row.figures();
                InstallmentState {
                    number: number_of(row),
                    due_date: row.due_date,
                    principal: figures.due.principal,
                    interest: figures.due.interest,
                    penalty: figures.due.penalty,
                    paid: figures.paid,
                    fee_decided: row.penalty_applied_on.is_some(),
                }
            })
            .collect(),
        payments: Vec::new(),
        decided_before: None,
        fees_until: terms.and_then(|terms| terms.fees_until),
        terms,
    }
}

fn number_of(row: &installment::Model) -> u32 {
    u32::try_from(row.number).unwrap_or_default()
}

/// Why stored rows cannot take a ledger state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Status(#[from] IllegalTransition),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Stored `rows` of `loan` brought up to `day` as the daily job brings them
/// (the fees whose day has passed decided, installments overdue, the loan's
/// status): what every operation on a loan does first, what the daily job
/// does to every loan, and what a read of a loan computes without writing.
/// Nothing changes when the rows are already up to date.
pub fn bring_up_to_date(
    loan: &loan::Model,
    rows: &[installment::Model],
    day: NaiveDate,
    now: DateTime<Utc>,
    rule: LateFeeRule,
) -> Result<Reconciliation, ReconcileError> {
    let mut state = state_of(rows, None);
    state.decide_fees_before(day, rule)?;
    Ok(reconcile(loan, rows, &state, day, now, &HashMap::new())?)
}

/// A late fee the state changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeChange {
    pub installment_id: Uuid,
    pub number: i32,
    pub due_date: NaiveDate,
    pub previous: Money,
    pub penalty: Money,
    /// What the installment owes with the new fee.
    pub owed: Money,
}

impl FeeChange {
    /// Whether the fee went up (charged or raised), not down (waived).
    pub fn is_charged(&self) -> bool {
        self.penalty > self.previous
    }
}

/// What storing a ledger state over stored rows changes.
#[derive(Debug, Clone)]
pub struct Reconciliation {
    /// One row per installment of the state, in its order, as it must now
    /// be stored: a stored row of the same number, or a new one.
    pub rows: Vec<installment::Model>,
    /// Indexes into `rows` of stored rows that change.
    pub changed: Vec<usize>,
    /// Indexes into `rows` of rows to insert (a reversed prepayment brings
    /// back installments a shorter schedule had removed).
    pub inserted: Vec<usize>,
    /// Stored rows the state no longer has (a prepayment shortened the
    /// schedule).
    pub removed: Vec<Uuid>,
    pub fees: Vec<FeeChange>,
    /// Indexes into `rows` of the installments that become OVERDUE.
    pub newly_overdue: Vec<usize>,
    /// The loan as it must now be stored.
    pub loan: loan::Model,
    pub previous_status: LoanStatus,
    /// The day the state is as of.
    pub today: NaiveDate,
}

impl Reconciliation {
    /// `loan` and its `rows` as they are: nothing changes.
    pub fn unchanged(
        loan: &loan::Model,
        rows: Vec<installment::Model>,
        today: NaiveDate,
    ) -> Reconciliation {
        Reconciliation {
            rows,
            changed: Vec::new(),
            inserted: Vec::new(),
            removed: Vec::new(),
            fees: Vec::new(),
            newly_overdue: Vec::new(),
            loan: loan.clone(),
            previous_status: loan.status,
            today,
        }
    }

    pub fn outstanding(&self) -> Money {
        self.loan.totals().outstanding()
    }
}

/// Whether the figures the ledger keeps on a loan row differ.
pub fn loan_changed(before: &loan::Model, after: &loan::Model) -> bool {
    ledger_figures(before) != ledger_figures(after)
}

/// The figures of a loan row the ledger keeps, in a comparable form.
pub type LoanFigures = (
    LoanStatus,
    i64,
    i64,
    i64,
    Option<NaiveDate>,
    Option<DateTime<Utc>>,
    i64,
    i64,
    i64,
    i64,
);

pub fn ledger_figures(loan: &loan::Model) -> LoanFigures {
    (
        loan.status,
        loan.total_paid_minor,
        loan.penalties_minor,
        loan.penalties_paid_minor,
        loan.next_due_date,
        loan.paid_off_at,
        loan.installment_minor,
        loan.total_payable_minor,
        loan.principal_paid_minor,
        loan.interest_paid_minor,
    )
}

/// How the figures of the rows moved, part by part: what they are due and
/// what has been paid of them.
#[derive(Debug, Default, Clone, Copy)]
struct Movement {
    due: Owed,
    paid: Owed,
}

impl Movement {
    /// Adds the move from `before` to `after` (`None`: no such row).
    fn add(&mut self, before: Option<InstallmentFigures>, after: Option<InstallmentFigures>) {
        let (due_before, paid_before) = before.map_or_else(Default::default, |f| (f.due, f.paid));
        let (due_after, paid_after) = after.map_or_else(Default::default, |f| (f.due, f.paid));
        self.due = self.due + due_after - due_before;
        self.paid = self.paid + paid_after - paid_before;
    }
}

fn figures_of(state: &InstallmentState) -> InstallmentFigures {
    InstallmentFigures {
        due_date: state.due_date,
        due: state.due(),
        paid: state.paid,
    }
}

/// The rows and loan figures `state` gives stored `rows` of `loan`, as of
/// `today`. `rows` are either every installment of the loan or (for an
/// ordinary payment valued today, and the daily job) every one not fully
/// paid: the figures of the loan move by the differences, so both give the
/// same loan. Rows and state installments are matched by number; a number
/// only the state has is a new row (with the id `installment_ids` gives
/// its number, the id it had before a prepayment removed it, or a new
/// one), one only the rows have is removed.
///
/// Principal a prepayment paid is owed by no installment: it is what the
/// rows' principal shrank by, and counts as paid. `totalPayable` is the
/// loan's principal plus the interest of the current schedule.
pub fn reconcile(
    loan: &loan::Model,
    rows: &[installment::Model],
    state: &LedgerState,
    today: NaiveDate,
    now: DateTime<Utc>,
    installment_ids: &HashMap<u32, Uuid>,
) -> Result<Reconciliation, IllegalTransition> {
    let kept: HashSet<u32> = state.installments.iter().map(|row| row.number).collect();
    let mut movement = Movement::default();
    let mut out = Reconciliation::unchanged(loan, Vec::new(), today);
    for gone in rows.iter().filter(|row| !kept.contains(&number_of(row))) {
        out.remove(gone, &mut movement);
    }
    let stored: HashMap<u32, &installment::Model> =
        rows.iter().map(|row| (number_of(row), row)).collect();
    let mut any_overdue = false;
    let mut next_due_date: Option<NaiveDate> = None;
    for after in &state.installments {
        let existing = stored.get(&after.number).copied();
        let row = existing.cloned().unwrap_or_else(|| {
            let id = installment_ids
                .get(&after.number)
                .copied()
                .unwrap_or_else(Uuid::now_v7);
            new_row(loan, after, id, now)
        });
        movement.add(
            existing.map(installment::Model::figures),
            Some(figures_of(after)),
        );
        let next = out.keep(row, existing.is_some(), after, today, now);
        any_overdue |= next.status == InstallmentStatus::Overdue;
        if next.status != InstallmentStatus::Paid {
            next_due_date = Some(next_due_date.map_or(next.due_date, |day| day.min(next.due_date)));
        }
    }
    out.loan = next_loan(loan, movement, state.terms, next_due_date, any_overdue, now)?;
    Ok(out)
}

impl Reconciliation {
    /// A stored row the state no longer has; a fee goes with it (waived).
    fn remove(&mut self, gone: &installment::Model, movement: &mut Movement) {
        let before = gone.figures();
        if before.due.penalty.is_positive() {
            self.fees.push(FeeChange {
                installment_id: gone.id,
                number: gone.number,
                due_date: gone.due_date,
                previous: before.due.penalty,
                penalty: Money::ZERO,
                owed: Money::ZERO,
            });
        }
        movement.add(Some(before), None);
        self.removed.push(gone.id);
    }

    /// `row` (stored when `stored`, else new) as `after` says it must now
    /// be; returns it as kept.
    fn keep(
        &mut self,
        row: installment::Model,
        stored: bool,
        after: &InstallmentState,
        today: NaiveDate,
        now: DateTime<Utc>,
    ) -> &installment::Model {
        let index = self.rows.len();
        let next = next_row(&row, after, today, now);
        if after.penalty != row.figures().due.penalty {
            self.fees.push(FeeChange {
                installment_id: row.id,
                number: row.number,
                due_date: after.due_date,
                previous: row.figures().due.penalty,
                penalty: after.penalty,
                owed: after.owed().total(),
            });
        }
        if next.status == InstallmentStatus::Overdue && row.status != InstallmentStatus::Overdue {
            self.newly_overdue.push(index);
        }
        if !stored {
            self.inserted.push(index);
        } else if next != row {
            self.changed.push(index);
        }
        self.rows.push(next);
        &self.rows[index]
    }
}

/// `row` with the figures, status and marks of `after` on `today`.
fn next_row(
    row: &installment::Model,
    after: &InstallmentState,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> installment::Model {
    let status = after.status(today);
    let settled = after.is_settled();
    let mut next = row.clone();
    next.due_date = after.due_date;
    next.principal_minor = after.principal.minor();
    next.interest_minor = after.interest.minor();
    next.penalty_minor = after.penalty.minor();
    next.principal_paid_minor = after.paid.principal.minor();
    next.interest_paid_minor = after.paid.interest.minor();
    next.penalty_paid_minor = after.paid.penalty.minor();
    next.status = status;
    next.overdue_since = if status == InstallmentStatus::Overdue {
        row.overdue_since.or(Some(today))
    } else {
        row.overdue_since.filter(|_| settled)
    };
    // A settled installment that owed no fee needs no mark: nothing short
    // of a replay from the start can make it owe again.
    next.penalty_applied_on = (after.fee_decided && (!settled || after.penalty.is_positive()))
        .then(|| row.penalty_applied_on.unwrap_or(today));
    next.paid_at = if settled {
        row.paid_at.or(Some(now))
    } else {
        None
    };
    next
}

/// `loan` with its figures moved by `movement`, its regular amount from
/// `terms` (when a prepayment rescheduled), and its status by the rule.
fn next_loan(
    loan: &loan::Model,
    movement: Movement,
    terms: Option<LoanTerms>,
    next_due_date: Option<NaiveDate>,
    any_overdue: bool,
    now: DateTime<Utc>,
) -> Result<loan::Model, IllegalTransition> {
    // What the schedule's principal shrank by was prepaid.
    let prepaid = Money::ZERO - movement.due.principal;
    let paid = movement.paid;
    let moved = |minor: i64, by: Money| (Money::from_minor(minor) + by).minor();
    let mut next = loan.clone();
    next.total_paid_minor = moved(loan.total_paid_minor, paid.total() + prepaid);
    next.principal_paid_minor = moved(loan.principal_paid_minor, paid.principal + prepaid);
    next.interest_paid_minor = moved(loan.interest_paid_minor, paid.interest);
    next.penalties_minor = moved(loan.penalties_minor, movement.due.penalty);
    next.penalties_paid_minor = moved(loan.penalties_paid_minor, paid.penalty);
    next.total_payable_minor = moved(loan.total_payable_minor, movement.due.interest);
    if let Some(terms) = terms {
        next.installment_minor = terms.installment_amount.minor();
    }
    next.next_due_date = next_due_date;
    // Nothing leaves WRITTEN_OFF, however much is paid.
    let status = if loan.status == LoanStatus::WrittenOff {
        LoanStatus::WrittenOff
    } else {
        loan_status(next.totals().outstanding(), any_overdue)
    };
    if status != loan.status {
        loan.status.transition(status)?;
    }
    next.status = status;
    next.paid_off_at = if status == LoanStatus::Paid {
        loan.paid_off_at.or(Some(now))
    } else {
        None
    };
    Ok(next)
}

/// A row for an installment no stored row holds.
pub fn new_row(
    loan: &loan::Model,
    state: &InstallmentState,
    id: Uuid,
    now: DateTime<Utc>,
) -> installment::Model {
    installment::Model {
        id,
        loan_id: loan.id,
        user_id: loan.user_id,
        number: i32::try_from(state.number).unwrap_or(i32::MAX),
        due_date: state.due_date,
        principal_minor: state.principal.minor(),
        interest_minor: state.interest.minor(),
        penalty_minor: 0,
        principal_paid_minor: 0,
        interest_paid_minor: 0,
        penalty_paid_minor: 0,
        status: InstallmentStatus::Pending,
        overdue_since: None,
        penalty_applied_on: None,
        paid_at: None,
        created_at: now,
        updated_at: now,
    }
}

#[cfg(test)]
mod tests {
    //! The service's way of keeping rows — a payment valued today appended
    //! to the stored rows not fully paid, a backdated payment or a reversal
    //! replayed in full, the job storing fee days as they pass, reads
    //! computing today on top of whatever is stored — always shows what a
    //! fresh replay of the posted payments shows.

    use super::*;
    use crate::enums::ExcessPolicy;
    use crate::ledger::replay::fixtures::{approved_loan, policies};
    use crate::ledger::replay::{ApprovedInstallment, Posting, replay};
    use crate::money::Percent;
    use proptest::prelude::*;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    fn at(day: NaiveDate) -> DateTime<Utc> {
        day.and_hms_opt(10, 0, 0).expect("time").and_utc()
    }

    fn loan_row(schedule: &[ApprovedInstallment], approved: NaiveDate) -> loan::Model {
        let payable: i64 = schedule
            .iter()
            .map(|row| (row.principal + row.interest).minor())
            .sum();
        loan::Model {
            id: Uuid::from_u128(1),
            user_id: Uuid::from_u128(2),
            status: LoanStatus::Approved,
            currency: "USD".to_owned(),
            principal_minor: schedule.iter().map(|row| row.principal.minor()).sum(),
            annual_interest_rate: "12".to_owned(),
            term_months: i32::try_from(schedule.len()).expect("term"),
            purpose: None,
            installment_minor: 0,
            total_payable_minor: payable,
            total_paid_minor: 0,
            penalties_minor: 0,
            penalties_paid_minor: 0,
            next_due_date: schedule.first().map(|row| row.due_date),
            first_due_date: schedule.first().map(|row| row.due_date),
            approved_by: None,
            approved_at: Some(at(approved)),
            rejected_by: None,
            rejected_at: None,
            rejection_reason: None,
            cancelled_at: None,
            paid_off_at: None,
            created_at: at(approved),
            updated_at: at(approved),
            principal_paid_minor: 0,
            interest_paid_minor: 0,
            written_off_at: None,
            principal_written_off_minor: 0,
            paid_before_write_off_minor: 0,
            interest_paid_before_write_off_minor: 0,
            penalties_paid_before_write_off_minor: 0,
        }
    }

    fn installment_rows(
        schedule: &[ApprovedInstallment],
        loan: &loan::Model,
        approved: NaiveDate,
    ) -> Vec<installment::Model> {
        LedgerState::approved(schedule, LoanTerms::approved(schedule, Percent::zero()))
            .installments
            .iter()
            .map(|row| new_row(loan, row, Uuid::now_v7(), at(approved)))
            .collect()
    }

    /// What the service stores: `rows` (all of the loan's) and `loan`.
    struct Stored {
        loan: loan::Model,
        rows: Vec<installment::Model>,
    }

    impl Stored {
        /// Writes a reconciliation, as `store` does.
        fn store(&mut self, reconciliation: Reconciliation) {
            self.rows
                .retain(|row| !reconciliation.removed.contains(&row.id));
            for row in reconciliation.rows {
                match self.rows.iter_mut().find(|stored| stored.id == row.id) {
                    Some(stored) => *stored = row,
                    None => self.rows.push(row),
                }
            }
            self.rows.sort_by_key(|row| row.number);
            self.loan = reconciliation.loan;
        }

        /// `GET /loans/{id}`: today computed over what is stored.
        fn read(&self, today: NaiveDate, rule: LateFeeRule) -> Reconciliation {
            let mut state = state_of(&self.rows, None);
            state.decide_fees_before(today, rule).expect("fees");
            reconcile(
                &self.loan,
                &self.rows,
                &state,
                today,
                at(today),
                &HashMap::new(),
            )
            .expect("transition")
        }

        /// What a prepayment or a settlement starts from: every row, and
        /// the terms with the loan's current regular amount.
        fn full_state(&self, approved: LoanTerms) -> LedgerState {
            state_of(
                &self.rows,
                Some(LoanTerms {
                    installment_amount: Money::from_minor(self.loan.installment_minor),
                    ..approved
                }),
            )
        }
    }

    fn ledger_fields(
        row: &installment::Model,
    ) -> (
        i32,
        NaiveDate,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        InstallmentStatus,
    ) {
        (
            row.number,
            row.due_date,
            row.principal_minor,
            row.interest_minor,
            row.penalty_minor,
            row.principal_paid_minor,
            row.interest_paid_minor,
            row.penalty_paid_minor,
            row.status,
        )
    }

    type LoanFields = (
        LoanStatus,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        Option<NaiveDate>,
    );

    fn loan_fields(loan: &loan::Model) -> LoanFields {
        (
            loan.status,
            loan.total_paid_minor,
            loan.penalties_minor,
            loan.penalties_paid_minor,
            loan.installment_minor,
            loan.total_payable_minor,
            loan.principal_paid_minor,
            loan.interest_paid_minor,
            loan.next_due_date,
        )
    }

    #[derive(Clone, Debug)]
    enum Operation {
        /// Days pass; the daily job stores them, or nothing runs.
        Wait(u32, bool),
        PayToday(i64, ExcessPolicy),
        PayBackdated(i64, u32, ExcessPolicy),
        SettleToday,
        Reverse(usize),
    }

    proptest! {
        #[test]
        fn stored_rows_always_read_as_a_fresh_replay(
            (principal, rate, term) in (10_000i64..200_000, prop_oneof![Just(0u32), 1u32..25], 1u32..7),
            operations in prop::collection::vec(prop_oneof![
                ((1u32..40), any::<bool>()).prop_map(|(days, job)| Operation::Wait(days, job)),
                ((1i64..60_000), policies()).prop_map(|(a, p)| Operation::PayToday(a, p)),
                ((1i64..60_000), (1u32..50), policies()).prop_map(|(a, d, p)| Operation::PayBackdated(a, d, p)),
                Just(Operation::SettleToday),
                (0usize..6).prop_map(Operation::Reverse),
            ], 1..25),
            percent in 0u32..8,
            grace in 0u32..4,
        ) {
            let rule = LateFeeRule {
                percent: Percent::parse(&percent.to_string()).expect("percent"),
                grace_days: grace,
            };
            let approved_on = date("2026-01-15");
            let rate = Percent::parse(&rate.to_string()).expect("rate");
            let (schedule, terms) = approved_loan(principal, rate, term);
            let loan = loan::Model {
                installment_minor: terms.installment_amount.minor(),
                ..loan_row(&schedule, approved_on)
            };
            let mut stored = Stored {
                rows: installment_rows(&schedule, &loan, approved_on),
                loan,
            };
            let mut today = approved_on;
            let mut posted: Vec<Posting> = Vec::new();
            let mut sequence = 0u64;
            for operation in operations {
                if stored.loan.status == LoanStatus::Paid && !matches!(operation, Operation::Wait(..) | Operation::Reverse(_)) {
                    continue;
                }
                let mut next_posting = |amount: i64, value_date: NaiveDate, excess: ExcessPolicy| {
                    sequence += 1;
                    Posting {
                        id: Uuid::from_u128(u128::from(sequence)),
                        amount: Money::from_minor(amount),
                        value_date,
                        sequence,
                        excess,
                    }
                };
                match operation {
                    Operation::Wait(days, job) => {
                        today = today + chrono::Days::new(u64::from(days));
                        if job {
                            let reconciliation = stored.read(today, rule);
                            stored.store(reconciliation);
                        }
                    }
                    Operation::PayToday(amount, excess) => {
                        let posting = next_posting(amount, today, excess);
                        // An ordinary payment takes the rows not fully
                        // paid; a prepayment every row and the terms.
                        let (rows, state) = if excess == ExcessPolicy::NextInstallments {
                            let rows: Vec<installment::Model> = stored
                                .rows
                                .iter()
                                .filter(|row| row.status != InstallmentStatus::Paid)
                                .cloned()
                                .collect();
                            let state = state_of(&rows, None);
                            (rows, state)
                        } else {
                            (stored.rows.clone(), stored.full_state(terms))
                        };
                        if let Ok(state) = state.append(&posting, today, rule) {
                            let reconciliation =
                                reconcile(&stored.loan, &rows, &state, today, at(today), &HashMap::new()).expect("transition");
                            stored.store(reconciliation);
                            posted.push(posting);
                        }
                    }
                    Operation::SettleToday => {
                        let mut state = stored.full_state(terms);
                        state.decide_fees_before(today, rule).expect("fees");
                        let quote = crate::ledger::payoff::payoff_quote(&state.installments, today).expect("quote");
                        let posting = next_posting(quote.total.minor(), today, ExcessPolicy::Settlement);
                        if let Ok(state) = state.append(&posting, today, rule) {
                            let reconciliation =
                                reconcile(&stored.loan, &stored.rows, &state, today, at(today), &HashMap::new()).expect("transition");
                            stored.store(reconciliation);
                            posted.push(posting);
                        }
                    }
                    Operation::PayBackdated(amount, days, excess) => {
                        let value_date = (today - chrono::Days::new(u64::from(days))).max(approved_on);
                        let posting = next_posting(amount, value_date, excess);
                        let mut with = posted.clone();
                        with.push(posting);
                        if let Ok(state) = replay(&schedule, terms, &with, today, rule) {
                            let reconciliation =
                                reconcile(&stored.loan, &stored.rows, &state, today, at(today), &HashMap::new()).expect("transition");
                            stored.store(reconciliation);
                            posted = with;
                        }
                    }
                    Operation::Reverse(index) => {
                        if index < posted.len() {
                            let mut without = posted.clone();
                            without.remove(index);
                            if let Ok(state) = replay(&schedule, terms, &without, today, rule) {
                                let reconciliation =
                                    reconcile(&stored.loan, &stored.rows, &state, today, at(today), &HashMap::new()).expect("transition");
                                stored.store(reconciliation);
                                posted = without;
                            }
                        }
                    }
                }
                let fresh = replay(&schedule, terms, &posted, today, rule).expect("replay");
                let expected = reconcile(&stored.loan, &stored.rows, &fresh, today, at(today), &HashMap::new()).expect("transition");
                let shown = stored.read(today, rule);
                let seen: Vec<_> = shown.rows.iter().map(ledger_fields).collect();
                let wanted: Vec<_> = expected.rows.iter().map(ledger_fields).collect();
                prop_assert_eq!(seen, wanted);
                prop_assert_eq!(loan_fields(&shown.loan), loan_fields(&expected.loan));
                let total: i64 = posted.iter().map(|p| p.amount.minor()).sum();
                prop_assert_eq!(shown.loan.total_paid_minor, total);
                // outstanding = totalPayable + penalties − totalPaid, and
                // totalPayable = principal + Σ interest of the schedule.
                let interest: i64 = shown.rows.iter().map(|row| row.interest_minor).sum();
                prop_assert_eq!(shown.loan.total_payable_minor, principal + interest);
                let owed: Money = shown.rows.iter().map(|row| row.figures().still_owed()).sum();
                prop_assert_eq!(shown.outstanding(), owed);
                // What the portfolio report sums: principal paid is what no
                // installment owes any more; interest paid, what they record.
                let unpaid_principal: i64 = shown
                    .rows
                    .iter()
                    .map(|row| row.principal_minor - row.principal_paid_minor)
                    .sum();
                prop_assert_eq!(shown.loan.principal_paid_minor, principal - unpaid_principal);
                let interest_paid: i64 = shown.rows.iter().map(|row| row.interest_paid_minor).sum();
                prop_assert_eq!(shown.loan.interest_paid_minor, interest_paid);
                prop_assert_eq!(
                    shown.loan.principal_paid_minor + shown.loan.interest_paid_minor + shown.loan.penalties_paid_minor,
                    total
                );
            }
        }
    }
}
