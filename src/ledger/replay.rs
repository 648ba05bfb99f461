//! A loan's state as a pure function of its approved schedule, its posted
//! payments and today: the one rule of servicing.
//!
//! Replaying walks the loan's calendar. Payments apply in `(value date,
//! recorded order)`; the late fee of each installment is decided at the end
//! of its fee day (`due date + grace`) from what was then unpaid of its
//! principal and interest, provided that day is before today. A payment
//! valued on a fee day therefore counts before that day's fee is decided.
//!
//! [`LedgerState::append`] is the common path, a payment valued today: it
//! applies one step to the state already brought up to today, and equals
//! [`replay`] of all postings (the property tests below check this against
//! random schedules, payments, value dates, fees and reversals). A
//! backdated payment or a reversal replays from the approved schedule.
//!
//! `crate::servicing` keeps the stored rows equal to what this says.

use chrono::NaiveDate;
use uuid::Uuid;

use super::allocation::{AllocationError, Owed, PaymentSplit, allocate_payment};
use super::late_fee::LateFeeRule;
use crate::enums::{InstallmentStatus, LoanStatus};
use crate::money::Money;

/// One installment as approved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApprovedInstallment {
    pub number: u32,
    pub due_date: NaiveDate,
    pub principal: Money,
    pub interest: Money,
}

impl From<&crate::schedule::ScheduledInstallment> for ApprovedInstallment {
    fn from(row: &crate::schedule::ScheduledInstallment) -> Self {
        ApprovedInstallment {
            number: row.number,
            due_date: row.due_date,
            principal: row.principal,
            interest: row.interest,
        }
    }
}

/// A posted payment: what it is, the day it counts from, and its place in
/// the order of recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Posting {
    pub id: Uuid,
    pub amount: Money,
    pub value_date: NaiveDate,
    /// Increases with the time the payment was recorded.
    pub sequence: u64,
}

/// One installment in the replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstallmentState {
    pub number: u32,
    pub due_date: NaiveDate,
    pub principal: Money,
    pub interest: Money,
    /// The late fee, once decided (zero when none).
    pub penalty: Money,
    pub paid: Owed,
    /// Whether its fee day has been decided.
    pub fee_decided: bool,
}

impl InstallmentState {
    /// What is still owed of each part.
    pub fn owed(&self) -> Owed {
        Owed {
            penalty: self.penalty - self.paid.penalty,
            interest: self.interest - self.paid.interest,
            principal: self.principal - self.paid.principal,
        }
    }

    pub fn is_settled(&self) -> bool {
        !self.owed().total().is_positive()
    }

    pub fn status(&self, today: NaiveDate) -> InstallmentStatus {
        if self.is_settled() {
            InstallmentStatus::Paid
        } else if super::is_overdue(self.due_date, false, today) {
            InstallmentStatus::Overdue
        } else if self.paid.total().is_positive() {
            InstallmentStatus::Partial
        } else {
            InstallmentStatus::Pending
        }
    }
}

/// A payment's portions in the replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedPayment {
    pub id: Uuid,
    pub split: PaymentSplit,
}

/// What the replay says of a loan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerState {
    pub installments: Vec<InstallmentState>,
    /// Every posted payment, in the order applied.
    pub payments: Vec<AppliedPayment>,
    /// The day up to which fees have been decided (exclusive).
    pub decided_before: Option<NaiveDate>,
}

/// Why a replay or an append cannot take a payment.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("payment {id} cannot be applied: {source}")]
    Allocation {
        id: Uuid,
        #[source]
        source: AllocationError,
    },
    #[error("an appended payment must be valued on or after {day}")]
    ValuedBeforeState { day: NaiveDate },
    #[error("a late fee does not fit in an amount of money")]
    FeeOverflow,
}

impl LedgerState {
    /// The loan as approved: nothing paid, no fee decided.
    pub fn approved(schedule: &[ApprovedInstallment]) -> LedgerState {
        LedgerState {
            installments: schedule
                .iter()
                .map(|row| InstallmentState {
                    number: row.number,
                    due_date: row.due_date,
                    principal: row.principal,
                    interest: row.interest,
                    penalty: Money::ZERO,
                    paid: Owed::default(),
                    fee_decided: false,
                })
                .collect(),
            payments: Vec::new(),
            decided_before: None,
        }
    }

    /// Everything still owed.
    pub fn outstanding(&self) -> Money {
        self.installments.iter().map(|row| row.owed().total()).sum()
    }

    pub fn status(&self, today: NaiveDate) -> LoanStatus {
        if !self.outstanding().is_positive() {
            LoanStatus::Paid
        } else if self
            .installments
            .iter()
            .any(|row| !row.is_settled() && super::is_overdue(row.due_date, false, today))
        {
            LoanStatus::Overdue
        } else {
            LoanStatus::Approved
        }
    }

    /// Decides the fee of every installment whose fee day ended before
    /// `day`, from what was then unpaid of its principal and interest.
    pub fn decide_fees_before(
        &mut self,
        day: NaiveDate,
        rule: LateFeeRule,
    ) -> Result<(), LedgerError> {
        for row in self.installments.iter_mut().filter(|row| !row.fee_decided) {
            if !rule.grace_is_over(row.due_date, day) {
                continue;
            }
            let unpaid = (row.principal + row.interest) - (row.paid.principal + row.paid.interest);
            if unpaid.is_positive() {
                row.penalty = rule.fee_for(unpaid).ok_or(LedgerError::FeeOverflow)?;
            }
            row.fee_decided = true;
        }
        if self.decided_before.is_none_or(|before| before < day) {
            self.decided_before = Some(day);
        }
        Ok(())
    }

    /// Applies one payment to the state as it stands: oldest installment
    /// first, penalty → interest → principal.
    fn apply(&mut self, posting: &Posting) -> Result<(), LedgerError> {
        let owed: Vec<Owed> = self
            .installments
            .iter()
            .map(InstallmentState::owed)
            .collect();
        let split =
            allocate_payment(posting.amount, &owed).map_err(|source| LedgerError::Allocation {
                id: posting.id,
                source,
            })?;
        for allocation in &split.allocations {
            if let Some(row) = self.installments.get_mut(allocation.index) {
                row.paid.penalty += allocation.penalty;
                row.paid.interest += allocation.interest;
                row.paid.principal += allocation.principal;
            }
        }
        self.payments.push(AppliedPayment {
            id: posting.id,
            split,
        });
        Ok(())
    }

    /// The common path: a payment valued on or after every day already
    /// decided (in practice: today) applied as one step, then the loan
    /// brought up to `today`. Equal to [`replay`] with the payment added.
    pub fn append(
        &self,
        posting: &Posting,
        today: NaiveDate,
        rule: LateFeeRule,
    ) -> Result<LedgerState, LedgerError> {
        if let Some(day) = self.decided_before.filter(|day| posting.value_date < *day) {
            return Err(LedgerError::ValuedBeforeState { day });
        }
        let mut next = self.clone();
        next.decide_fees_before(posting.value_date, rule)?;
        next.apply(posting)?;
        next.decide_fees_before(today, rule)?;
        Ok(next)
    }
}

/// The loan's state from its approved `schedule`, its posted `postings`
/// (any order; applied by value date, then recording order) and `today`.
pub fn replay(
    schedule: &[ApprovedInstallment],
    postings: &[Posting],
    today: NaiveDate,
    rule: LateFeeRule,
) -> Result<LedgerState, LedgerError> {
    let mut ordered = postings.to_vec();
    ordered.sort_by_key(|posting| (posting.value_date, posting.sequence));
    let mut state = LedgerState::approved(schedule);
    for posting in &ordered {
        state.decide_fees_before(posting.value_date, rule)?;
        state.apply(posting)?;
    }
    state.decide_fees_before(today, rule)?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Percent;
    use proptest::prelude::*;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    fn rule(percent: &str, grace_days: u32) -> LateFeeRule {
        LateFeeRule {
            percent: Percent::parse(percent).expect("percent"),
            grace_days,
        }
    }

    /// 300.00 over three months, 1.00 interest each, due on the 15th.
    fn schedule() -> Vec<ApprovedInstallment> {
        ["2026-02-15", "2026-03-15", "2026-04-15"]
            .iter()
            .enumerate()
            .map(|(index, due)| ApprovedInstallment {
                number: u32::try_from(index + 1).expect("number"),
                due_date: date(due),
                principal: Money::from_minor(10_000),
                interest: Money::from_minor(100),
            })
            .collect()
    }

    fn posting(sequence: u64, amount: i64, value_date: &str) -> Posting {
        Posting {
            id: Uuid::from_u128(u128::from(sequence)),
            amount: Money::from_minor(amount),
            value_date: date(value_date),
            sequence,
        }
    }

    #[test]
    fn a_fee_is_decided_at_the_end_of_the_fee_day_from_what_was_unpaid() {
        let state = replay(
            &schedule(),
            &[posting(1, 5_050, "2026-02-10")],
            date("2026-02-20"),
            rule("5", 0),
        )
        .expect("replay");
        // 101.00 due, 50.50 paid: 5 % of the 50.50 left is 2.525 → 2.52.
        assert_eq!(state.installments[0].penalty, Money::from_minor(252));
        assert_eq!(state.status(date("2026-02-20")), LoanStatus::Overdue);
        assert_eq!(
            state.installments[0].status(date("2026-02-20")),
            InstallmentStatus::Overdue
        );
        assert_eq!(state.outstanding(), Money::from_minor(30_300 - 5_050 + 252));
    }

    #[test]
    fn a_payment_valued_on_the_fee_day_counts_before_the_fee() {
        let on_time = replay(
            &schedule(),
            &[posting(1, 10_100, "2026-02-15")],
            date("2026-03-01"),
            rule("5", 0),
        )
        .expect("replay");
        assert_eq!(on_time.installments[0].penalty, Money::ZERO);
        assert_eq!(on_time.status(date("2026-03-01")), LoanStatus::Approved);
        let a_day_late = replay(
            &schedule(),
            &[posting(1, 10_100, "2026-02-16")],
            date("2026-03-01"),
            rule("5", 0),
        )
        .expect("replay");
        // 5 % of 101.00; the payment paid the fee first, leaving 5.05 of
        // interest and principal.
        assert_eq!(a_day_late.installments[0].penalty, Money::from_minor(505));
        assert_eq!(a_day_late.payments[0].split.penalty, Money::from_minor(505));
    }

    #[test]
    fn a_fee_waits_for_its_grace_and_for_today() {
        let within_grace =
            replay(&schedule(), &[], date("2026-02-18"), rule("5", 3)).expect("replay");
        assert!(!within_grace.installments[0].fee_decided);
        assert_eq!(within_grace.installments[0].penalty, Money::ZERO);
        let after = replay(&schedule(), &[], date("2026-02-19"), rule("5", 3)).expect("replay");
        assert_eq!(after.installments[0].penalty, Money::from_minor(505));
    }

    #[test]
    fn payments_apply_by_value_date_then_recording_order() {
        // Recorded late but valued earlier: it pays the first installment
        // before its fee day, so no fee.
        let state = replay(
            &schedule(),
            &[
                posting(1, 5_000, "2026-03-01"),
                posting(2, 10_100, "2026-02-14"),
            ],
            date("2026-03-02"),
            rule("5", 0),
        )
        .expect("replay");
        assert_eq!(state.payments[0].id, Uuid::from_u128(2));
        assert_eq!(state.installments[0].penalty, Money::ZERO);
        assert!(state.installments[0].is_settled());
    }

    #[test]
    fn more_than_is_owed_is_refused() {
        let refused = replay(
            &schedule(),
            &[posting(1, 30_301, "2026-02-01")],
            date("2026-02-02"),
            rule("5", 0),
        );
        assert!(matches!(refused, Err(LedgerError::Allocation { .. })));
        let paid = replay(
            &schedule(),
            &[posting(1, 30_300, "2026-02-01")],
            date("2026-02-02"),
            rule("5", 0),
        )
        .expect("replay");
        assert_eq!(paid.status(date("2026-06-01")), LoanStatus::Paid);
    }

    /// What happens to a loan, one operation at a time.
    #[derive(Clone, Debug)]
    enum Operation {
        /// The calendar moves on.
        Wait(u32),
        /// A payment valued today: appended.
        PayToday(i64),
        /// A payment valued some days back: the loan is replayed.
        PayBackdated(i64, u32),
        /// A posted payment is reversed: the loan is replayed.
        Reverse(usize),
    }

    fn operations() -> impl Strategy<Value = Vec<Operation>> {
        prop::collection::vec(
            prop_oneof![
                (1u32..45).prop_map(Operation::Wait),
                (1i64..20_000).prop_map(Operation::PayToday),
                ((1i64..20_000), (1u32..60)).prop_map(|(a, d)| Operation::PayBackdated(a, d)),
                (0usize..8).prop_map(Operation::Reverse),
            ],
            1..30,
        )
    }

    fn schedules() -> impl Strategy<Value = Vec<ApprovedInstallment>> {
        prop::collection::vec((1i64..50_000, 0i64..5_000), 1..8).prop_map(|rows| {
            let first = date("2026-02-15");
            rows.into_iter()
                .enumerate()
                .map(|(index, (principal, interest))| ApprovedInstallment {
                    number: u32::try_from(index + 1).expect("number"),
                    due_date: first
                        .checked_add_months(chrono::Months::new(
                            u32::try_from(index).expect("index"),
                        ))
                        .expect("date"),
                    principal: Money::from_minor(principal),
                    interest: Money::from_minor(interest),
                })
                .collect()
        })
    }

    proptest! {
        /// Appending payments valued today, and replaying for backdated
        /// payments and reversals, always ends where a fresh replay of
        /// the posted payments does.
        #[test]
        fn appending_equals_replaying(
            schedule in schedules(),
            operations in operations(),
            percent in 0u32..10,
            grace in 0u32..5,
        ) {
            let rule = LateFeeRule {
                percent: Percent::parse(&percent.to_string()).expect("percent"),
                grace_days: grace,
            };
            let mut today = date("2026-01-20");
            let mut posted: Vec<Posting> = Vec::new();
            let mut sequence = 0u64;
            let mut state = replay(&schedule, &posted, today, rule).expect("approved");
            for operation in operations {
                match operation {
                    Operation::Wait(days) => {
                        today = today + chrono::Days::new(u64::from(days));
                        state.decide_fees_before(today, rule).expect("fees");
                    }
                    Operation::PayToday(amount) => {
                        sequence += 1;
                        let payment = Posting {
                            id: Uuid::from_u128(u128::from(sequence)),
                            amount: Money::from_minor(amount),
                            value_date: today,
                            sequence,
                        };
                        // Refused when it is more than is owed; else kept.
                        if let Ok(next) = state.append(&payment, today, rule) {
                            state = next;
                            posted.push(payment);
                        }
                    }
                    Operation::PayBackdated(amount, days) => {
                        sequence += 1;
                        let payment = Posting {
                            id: Uuid::from_u128(u128::from(sequence)),
                            amount: Money::from_minor(amount),
                            value_date: today - chrono::Days::new(u64::from(days)),
                            sequence,
                        };
                        let mut with = posted.clone();
                        with.push(payment);
                        if let Ok(next) = replay(&schedule, &with, today, rule) {
                            state = next;
                            posted = with;
                        }
                    }
                    Operation::Reverse(index) => {
                        if index < posted.len() {
                            let mut without = posted.clone();
                            without.remove(index);
                            if let Ok(next) = replay(&schedule, &without, today, rule) {
                                state = next;
                                posted = without;
                            }
                        }
                    }
                }
                let fresh = replay(&schedule, &posted, today, rule).expect("replay");
                prop_assert_eq!(&state, &fresh);
                // Every cent of every posted payment is allocated.
                let paid: Money = state.installments.iter().map(|row| row.paid.total()).sum();
                let posted_total: Money = posted.iter().map(|p| p.amount).sum();
                prop_assert_eq!(paid, posted_total);
                prop_assert!(!state.outstanding().is_negative());
            }
        }
    }
}
