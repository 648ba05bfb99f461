//! The loan status machine, in one place.
//!
//! `PENDING → APPROVED | REJECTED | CANCELLED`; `APPROVED ⇄ OVERDUE`;
//! `APPROVED | OVERDUE → PAID`; `PAID → APPROVED | OVERDUE` (only a
//! reversal reaches it: a PAID loan takes no payment); `OVERDUE →
//! WRITTEN_OFF` (a confirmed write-off; nothing leaves it). Everything else
//! is refused.

use crate::db::entities::LoanStatus;

/// A transition the machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a loan cannot go from {} to {}", from.as_str(), to.as_str())]
pub struct IllegalTransition {
    pub from: LoanStatus,
    pub to: LoanStatus,
}

impl LoanStatus {
    pub fn can_become(self, to: LoanStatus) -> bool {
        use LoanStatus::{Approved, Cancelled, Overdue, Paid, Pending, Rejected, WrittenOff};
        matches!(
            (self, to),
            (Pending, Approved | Rejected | Cancelled)
                | (Approved, Overdue | Paid)
                | (Overdue, Approved | Paid)
                | (Paid, Approved | Overdue)
                | (Overdue, WrittenOff)
        )
    }

    /// `to`, if the machine allows it from here.
    pub fn transition(self, to: LoanStatus) -> Result<LoanStatus, IllegalTransition> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }

    /// The statuses of a loan being repaid.
    pub const ACTIVE: [LoanStatus; 2] = [LoanStatus::Approved, LoanStatus::Overdue];

    /// Whether the loan is being repaid (takes payments, has a schedule).
    pub fn is_active(self) -> bool {
        LoanStatus::ACTIVE.contains(&self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LoanStatus::*;

    const ALL: [LoanStatus; 7] = [
        Pending, Approved, Rejected, Cancelled, Overdue, Paid, WrittenOff,
    ];

    #[test]
    fn exactly_the_contracts_transitions_are_allowed() {
        let allowed = [
            (Pending, Approved),
            (Pending, Rejected),
            (Pending, Cancelled),
            (Approved, Overdue),
            (Overdue, Approved),
            (Approved, Paid),
            (Overdue, Paid),
            (Paid, Approved),
            (Paid, Overdue),
            (Overdue, WrittenOff),
        ];
        for from in ALL {
            for to in ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from:?} → {to:?}"
                );
            }
        }
        assert_eq!(
            Approved.transition(Approved).map_err(|e| e.to_string()),
            Err("a loan cannot go from APPROVED to APPROVED".to_owned())
        );
    }
}
