//! One installment as the ledger works on it: what it is due, what has
//! been paid of it, and whether its late fee has been decided. Shared by
//! the replay and the payoff quote, which both read installments and
//! neither of which needs the other to do so.

use chrono::NaiveDate;

use super::allocation::Owed;
use crate::enums::InstallmentStatus;
use crate::money::Money;

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
    /// What it is due, part by part (the late fee once decided).
    pub fn due(&self) -> Owed {
        Owed {
            penalty: self.penalty,
            interest: self.interest,
            principal: self.principal,
        }
    }

    /// What is still owed of each part.
    pub fn owed(&self) -> Owed {
        self.due().less(self.paid)
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
