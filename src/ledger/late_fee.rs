//! The late-fee rule.
//!
//! An installment that is still unpaid more than `LATE_FEE_GRACE_DAYS`
//! days after its due date is charged `LATE_FEE_PERCENT` of what it then
//! still owes (`amountDue − amountPaid`, before the fee), rounded half-even
//! to the cent, once ever. A fee of `0.00` is no fee.

use chrono::NaiveDate;

use super::InstallmentFigures;
use crate::money::{Money, Percent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LateFeeRule {
    pub percent: Percent,
    pub grace_days: u32,
}

impl LateFeeRule {
    /// Whether the grace period of an installment due on `due_date` is over
    /// on `as_of`: `as_of` is after `due_date + grace_days`.
    pub fn grace_is_over(self, due_date: NaiveDate, as_of: NaiveDate) -> bool {
        (as_of - due_date).num_days() > i64::from(self.grace_days)
    }

    /// The fee on what the installment still owes before the fee. `None`
    /// only when the product does not fit in an amount of money.
    pub fn fee_on(self, installment: &InstallmentFigures) -> Option<Money> {
        self.fee_for(installment.still_owed())
    }

    /// The fee on `unpaid`: the percentage, rounded half-even to the cent.
    pub fn fee_for(self, unpaid: Money) -> Option<Money> {
        self.percent.of(unpaid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Owed;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    fn rule(percent: &str, grace_days: u32) -> LateFeeRule {
        LateFeeRule {
            percent: Percent::parse(percent).expect("percent"),
            grace_days,
        }
    }

    #[test]
    fn the_grace_period_ends_after_its_last_day() {
        let due = date("2026-03-15");
        assert!(!rule("5", 0).grace_is_over(due, due));
        assert!(rule("5", 0).grace_is_over(due, date("2026-03-16")));
        assert!(!rule("5", 3).grace_is_over(due, date("2026-03-18")));
        assert!(rule("5", 3).grace_is_over(due, date("2026-03-19")));
    }

    #[test]
    fn the_fee_is_a_percent_of_what_is_still_owed_rounded_half_even() {
        let owed = |principal: i64, paid: i64| InstallmentFigures {
            due_date: date("2026-03-15"),
            due: Owed {
                principal: Money::from_minor(principal),
                ..Owed::default()
            },
            paid: Owed {
                principal: Money::from_minor(paid),
                ..Owed::default()
            },
        };
        // 5 % of 88.85 is 4.4425 → 4.44.
        assert_eq!(
            rule("5", 0).fee_on(&owed(8_885, 0)),
            Some(Money::from_minor(444))
        );
        // 5 % of 10.50 is 0.525 → 0.52 (to the even cent).
        assert_eq!(
            rule("5", 0).fee_on(&owed(2_050, 1_000)),
            Some(Money::from_minor(52))
        );
        assert_eq!(rule("0", 0).fee_on(&owed(8_885, 0)), Some(Money::ZERO));
    }
}
