//! The payoff quote: what closes a loan on a given day (API.md
//! § Settlement).
//!
//! Over the unpaid parts of each installment: one due on or before the
//! day owes its principal, interest and penalty; the first due after it
//! (the current period) owes its principal and the interest accrued so
//! far, `round_half_even(interest × elapsed ÷ length)` less what was
//! already paid of its interest (never below zero); later ones owe their
//! principal only. Every unpaid penalty is owed.
//!
//! Groundwork for settlement (issue 15): the services do not use it yet.

use chrono::{Months, NaiveDate};
use rust_decimal::Decimal;

use super::replay::LedgerState;
use crate::money::Money;

/// What closes the loan on `as_of`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PayoffQuote {
    pub principal: Money,
    pub interest: Money,
    pub penalties: Money,
    pub total: Money,
}

/// The quote for `state` (brought up to `as_of` by the caller, so that it
/// holds the fees the one rule charges by then) on `as_of`. `None` only
/// when a figure does not fit in an amount of money.
pub fn payoff_quote(state: &LedgerState, as_of: NaiveDate) -> Option<PayoffQuote> {
    let mut quote = PayoffQuote::default();
    let mut period_start = state
        .installments
        .first()?
        .due_date
        .checked_sub_months(Months::new(1))?;
    let mut current_seen = false;
    for row in &state.installments {
        let owed = row.owed();
        quote.principal = quote.principal.checked_add(owed.principal)?;
        quote.penalties = quote.penalties.checked_add(owed.penalty)?;
        if row.due_date <= as_of {
            quote.interest = quote.interest.checked_add(owed.interest)?;
        } else if !current_seen {
            current_seen = true;
            let accrued = accrued_interest(row.interest, period_start, row.due_date, as_of)?;
            let still_owed = accrued.checked_sub(row.paid.interest)?.max(Money::ZERO);
            quote.interest = quote.interest.checked_add(still_owed)?;
        }
        period_start = row.due_date;
    }
    quote.total = quote
        .principal
        .checked_add(quote.interest)?
        .checked_add(quote.penalties)?;
    Some(quote)
}

/// `interest × elapsed ÷ length`, half-even to the cent, for a period from
/// `start` to `end` looked at on `as_of`.
fn accrued_interest(
    interest: Money,
    start: NaiveDate,
    end: NaiveDate,
    as_of: NaiveDate,
) -> Option<Money> {
    let length = (end - start).num_days();
    if length <= 0 {
        return Some(interest);
    }
    let elapsed = (as_of - start).num_days().clamp(0, length);
    let accrued = interest
        .to_decimal()
        .checked_mul(Decimal::from(elapsed))?
        .checked_div(Decimal::from(length))?;
    Money::from_decimal_half_even(accrued)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::LateFeeRule;
    use crate::ledger::replay::{ApprovedInstallment, Posting, replay};
    use crate::money::Percent;
    use crate::schedule::build_schedule;
    use uuid::Uuid;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    /// The golden loan: 10 000.00 at 12 % over 12 months, first due
    /// 2026-02-15 (#1: 788.49 + 100.00; #2: 796.37 + 92.12).
    fn golden() -> Vec<ApprovedInstallment> {
        let schedule = build_schedule(
            Money::from_minor(1_000_000),
            Percent::parse("12").expect("rate"),
            12,
            date("2026-02-15"),
            15,
        )
        .expect("schedule");
        schedule
            .installments
            .iter()
            .map(ApprovedInstallment::from)
            .collect()
    }

    fn rule() -> LateFeeRule {
        LateFeeRule {
            percent: Percent::parse("5").expect("percent"),
            grace_days: 0,
        }
    }

    fn quote(payments: &[(i64, &str)], as_of: &str) -> (String, String, String, String) {
        let postings: Vec<Posting> = payments
            .iter()
            .enumerate()
            .map(|(index, (amount, day))| Posting {
                id: Uuid::from_u128(index as u128 + 1),
                amount: Money::from_minor(*amount),
                value_date: date(day),
                sequence: index as u64,
            })
            .collect();
        let state = replay(&golden(), &postings, date(as_of), rule()).expect("replay");
        let quote = payoff_quote(&state, date(as_of)).expect("quote");
        (
            quote.principal.to_string(),
            quote.interest.to_string(),
            quote.penalties.to_string(),
            quote.total.to_string(),
        )
    }

    fn figures(
        principal: &str,
        interest: &str,
        penalties: &str,
        total: &str,
    ) -> (String, String, String, String) {
        (
            principal.to_owned(),
            interest.to_owned(),
            penalties.to_owned(),
            total.to_owned(),
        )
    }

    #[test]
    fn golden_quotes_of_the_golden_loan() {
        // On the approval day #1's period (2026-01-15 → 02-15, 31 days)
        // has just begun: the principal alone.
        assert_eq!(
            quote(&[], "2026-01-15"),
            figures("10000.00", "0.00", "0.00", "10000.00")
        );
        // 15 of 31 days: 100.00 × 15 ÷ 31 = 48.387… → 48.39.
        assert_eq!(
            quote(&[], "2026-01-30"),
            figures("10000.00", "48.39", "0.00", "10048.39")
        );
        // On its due date #1 is due whole; #2's period has not begun.
        assert_eq!(
            quote(&[], "2026-02-15"),
            figures("10000.00", "100.00", "0.00", "10100.00")
        );
        // #1 unpaid past its fee day: 5 % of 888.49 = 44.42; #2 accrued 5
        // of 28 days: 92.12 × 5 ÷ 28 = 16.45.
        assert_eq!(
            quote(&[], "2026-02-20"),
            figures("10000.00", "116.45", "44.42", "10160.87")
        );
        // #1 paid on time, then 50.00 more, which paid #2's interest
        // ahead: accrued 92.12 × 14 ÷ 28 = 46.06, less 50.00 paid, is not
        // below zero. Principal left: 10 000.00 − 788.49.
        assert_eq!(
            quote(
                &[(88_849, "2026-02-15"), (5_000, "2026-02-20")],
                "2026-03-01"
            ),
            figures("9211.51", "0.00", "0.00", "9211.51")
        );
        // The same, 2026-03-10: 92.12 × 23 ÷ 28 = 75.67 − 50.00 = 25.67.
        assert_eq!(
            quote(
                &[(88_849, "2026-02-15"), (5_000, "2026-02-20")],
                "2026-03-10"
            ),
            figures("9211.51", "25.67", "0.00", "9237.18")
        );
    }

    #[test]
    fn a_paid_off_loan_quotes_nothing() {
        let total: i64 = golden()
            .iter()
            .map(|row| (row.principal + row.interest).minor())
            .sum();
        assert_eq!(
            quote(&[(total, "2026-01-20")], "2026-06-01"),
            figures("0.00", "0.00", "0.00", "0.00")
        );
    }
}
