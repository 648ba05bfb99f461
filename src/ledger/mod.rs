//! The loan-servicing rules, in one place and with no I/O: what an
//! installment still owes, when it is overdue, the late fee, how a payment
//! is allocated, and ([`replay`]) a loan's whole state from its approved
//! schedule, its posted payments and today.
//!
//! Services and jobs read rows from the database, turn them into the types
//! here (`installment::Model::figures`, `loan::Model::totals`,
//! `servicing::rows::state_of`), ask these functions what follows, and the
//! servicing pipeline writes the answer back. Nothing here knows about SQL, HTTP
//! or the clock: "today" is always an argument.

pub mod allocation;
pub mod delinquency;
pub mod installment;
mod late_fee;
pub mod payoff;
pub mod replay;

use chrono::NaiveDate;

use crate::enums::LoanStatus;
use crate::money::Money;

pub use allocation::{AllocationError, Owed, PaymentSplit, Portions, allocate_payment};
pub use late_fee::LateFeeRule;

/// One installment's figures: what it is due and what has been paid of it,
/// part by part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstallmentFigures {
    pub due_date: NaiveDate,
    /// Principal, interest and any late fee charged.
    pub due: Owed,
    /// What payments have allocated to each part.
    pub paid: Owed,
}

impl InstallmentFigures {
    /// Principal + interest + penalty.
    pub fn amount_due(&self) -> Money {
        self.due.total()
    }

    /// Everything payments have allocated to it.
    pub fn amount_paid(&self) -> Money {
        self.paid.total()
    }

    /// What is still owed of each part.
    pub fn owed(&self) -> Owed {
        self.due.less(self.paid)
    }

    /// What is still owed in all.
    pub fn still_owed(&self) -> Money {
        self.amount_due() - self.amount_paid()
    }

    pub fn is_settled(&self) -> bool {
        !self.still_owed().is_positive()
    }

    /// Whether it is overdue on `as_of`: see [`is_overdue`].
    pub fn is_overdue(&self, as_of: NaiveDate) -> bool {
        is_overdue(self.due_date, self.is_settled(), as_of)
    }
}

/// The overdue rule: an installment is overdue when its due date is before
/// `as_of` (today, in the service time zone) and it is not fully paid.
pub fn is_overdue(due_date: NaiveDate, settled: bool, as_of: NaiveDate) -> bool {
    !settled && due_date < as_of
}

/// The status rule of an approved loan: `PAID` when nothing is owed; else
/// `OVERDUE` when some installment is overdue; else `APPROVED`.
pub fn loan_status(outstanding: Money, any_overdue: bool) -> LoanStatus {
    if !outstanding.is_positive() {
        LoanStatus::Paid
    } else if any_overdue {
        LoanStatus::Overdue
    } else {
        LoanStatus::Approved
    }
}

/// A loan's running totals, as stored on the loan row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoanTotals {
    /// Σ (principal + interest) of the schedule.
    pub total_payable: Money,
    /// Every late fee charged.
    pub penalties: Money,
    /// What payments have paid of the late fees.
    pub penalties_paid: Money,
    /// Σ posted payments.
    pub total_paid: Money,
}

impl LoanTotals {
    /// Everything still owed: unpaid principal, interest and penalties.
    pub fn outstanding(&self) -> Money {
        self.total_payable + self.penalties - self.total_paid
    }

    pub fn penalties_outstanding(&self) -> Money {
        self.penalties - self.penalties_paid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    fn parts(penalty: i64, interest: i64, principal: i64) -> Owed {
        Owed {
            penalty: Money::from_minor(penalty),
            interest: Money::from_minor(interest),
            principal: Money::from_minor(principal),
        }
    }

    fn figures(due: Owed, paid: Owed) -> InstallmentFigures {
        InstallmentFigures {
            due_date: date("2026-03-15"),
            due,
            paid,
        }
    }

    #[test]
    fn an_installment_owes_each_part_less_what_was_paid_of_it() {
        let row = figures(parts(500, 1_000, 8_885), parts(500, 400, 0));
        assert_eq!(row.amount_due(), Money::from_minor(10_385));
        assert_eq!(row.amount_paid(), Money::from_minor(900));
        assert_eq!(row.owed(), parts(0, 600, 8_885));
        assert_eq!(row.still_owed(), Money::from_minor(9_485));
        assert!(!row.is_settled());
        assert!(figures(parts(0, 1, 2), parts(0, 1, 2)).is_settled());
    }

    #[test]
    fn overdue_means_unpaid_and_due_before_the_day() {
        let row = figures(parts(0, 1_000, 9_000), Owed::default());
        assert!(
            !row.is_overdue(date("2026-03-15")),
            "due today is not overdue"
        );
        assert!(row.is_overdue(date("2026-03-16")));
        let paid = figures(parts(0, 1_000, 9_000), parts(0, 1_000, 9_000));
        assert!(!paid.is_overdue(date("2027-01-01")));
    }

    #[test]
    fn a_loan_owes_what_it_was_charged_less_what_was_paid() {
        let totals = LoanTotals {
            total_payable: Money::from_minor(106_619),
            penalties: Money::from_minor(444),
            penalties_paid: Money::ZERO,
            total_paid: Money::from_minor(8_885),
        };
        assert_eq!(totals.outstanding(), Money::from_minor(98_178));
        assert_eq!(totals.penalties_outstanding(), Money::from_minor(444));
    }
}
