//! The late-fee rule.
//!
//! An installment not fully paid (principal + interest) by the end of day
//! `dueDate + LATE_FEE_GRACE_DAYS` is charged `LATE_FEE_PERCENT` of what
//! was then unpaid of its principal + interest, rounded half-even to the
//! cent, once ever; the replay decides when ([`super::replay`]). A fee of
//! `0.00` is no fee.

use chrono::NaiveDate;

use super::Owed;
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

    /// The fee of an installment `due` these parts of which `paid` is
    /// paid: the percentage of its unpaid principal + interest, rounded
    /// half-even to the cent (zero when nothing of them is unpaid). `None`
    /// only when the product does not fit in an amount of money.
    pub fn fee_on(self, due: Owed, paid: Owed) -> Option<Money> {
        let unpaid = (due.principal + due.interest) - (paid.principal + paid.interest);
        if unpaid.is_positive() {
            self.percent.of(unpaid)
        } else {
            Some(Money::ZERO)
        }
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
        let parts = |principal: i64, interest: i64, penalty: i64| Owed {
            principal: Money::from_minor(principal),
            interest: Money::from_minor(interest),
            penalty: Money::from_minor(penalty),
        };
        let five = rule("5", 0);
        // 5 % of 88.85 is 4.4425 → 4.44.
        assert_eq!(
            five.fee_on(parts(7_885, 1_000, 0), Owed::default()),
            Some(Money::from_minor(444))
        );
        // 5 % of 10.50 is 0.525 → 0.52 (to the even cent).
        assert_eq!(
            five.fee_on(parts(2_050, 0, 0), parts(1_000, 0, 0)),
            Some(Money::from_minor(52))
        );
        // Only principal and interest count: an unpaid fee earns no fee.
        assert_eq!(
            five.fee_on(parts(1_000, 100, 500), parts(1_000, 100, 0)),
            Some(Money::ZERO)
        );
        assert_eq!(
            rule("0", 0).fee_on(parts(8_885, 0, 0), Owed::default()),
            Some(Money::ZERO)
        );
    }
}
