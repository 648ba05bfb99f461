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
//! The same figures, installment by installment, are what a settlement
//! pays ([`settlement_owed`]).

use chrono::{Months, NaiveDate};

use super::allocation::Owed;
use super::installment::InstallmentState;
use crate::money::Money;

/// What closes the loan on `as_of`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PayoffQuote {
    pub principal: Money,
    pub interest: Money,
    pub penalties: Money,
    pub total: Money,
}

impl PayoffQuote {
    /// The quote that pays `owed`. `None` only when a figure does not fit
    /// in an amount of money.
    pub fn of(owed: &[Owed]) -> Option<PayoffQuote> {
        let mut quote = PayoffQuote::default();
        for part in owed {
            quote.principal = quote.principal.checked_add(part.principal)?;
            quote.interest = quote.interest.checked_add(part.interest)?;
            quote.penalties = quote.penalties.checked_add(part.penalty)?;
        }
        quote.total = quote
            .principal
            .checked_add(quote.interest)?
            .checked_add(quote.penalties)?;
        Some(quote)
    }
}

/// The quote for a loan's `installments` (brought up to `as_of` by the
/// caller, so that they hold the fees the one rule charges by then) on
/// `as_of`. `None` only when a figure does not fit in an amount of money.
pub fn payoff_quote(installments: &[InstallmentState], as_of: NaiveDate) -> Option<PayoffQuote> {
    PayoffQuote::of(&settlement_owed(installments, as_of)?)
}

/// What settling on `as_of` pays of each of `installments` (one entry per
/// installment, in order). They must be every installment of the loan: a
/// period starts on the previous installment's due date.
pub fn settlement_owed(installments: &[InstallmentState], as_of: NaiveDate) -> Option<Vec<Owed>> {
    let mut period_start = installments
        .first()?
        .due_date
        .checked_sub_months(Months::new(1))?;
    let mut current_seen = false;
    let mut owed_by_installment = Vec::with_capacity(installments.len());
    for row in installments {
        let mut owed = row.owed();
        if row.due_date > as_of {
            owed.interest = if current_seen {
                Money::ZERO
            } else {
                current_seen = true;
                let accrued = accrued_interest(row.interest, period_start, row.due_date, as_of)?;
                accrued.checked_sub(row.paid.interest)?.max(Money::ZERO)
            };
        }
        owed_by_installment.push(owed);
        period_start = row.due_date;
    }
    Some(owed_by_installment)
}
/// `interest × elapsed ÷ length`, for a period from `start` to `end`
/// looked at on `as_of`: one fraction of integers (minor units × days ÷
/// days), rounded half-even to the cent once.
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
    interest.times_fraction(elapsed, length)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enums::ExcessPolicy;
    use crate::ledger::LateFeeRule;
    use crate::ledger::replay::{ApprovedInstallment, LoanTerms, Posting, replay};
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
                excess: ExcessPolicy::NextInstallments,
            })
            .collect();
        let terms = LoanTerms::approved(&golden(), Percent::parse("12").expect("rate"));
        let state = replay(&golden(), terms, &postings, date(as_of), rule()).expect("replay");
        let quote = payoff_quote(&state.installments, date(as_of)).expect("quote");
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
    fn accrued_interest_at_a_half_cent_goes_to_the_even_cent() {
        let (start, end) = (date("2026-04-15"), date("2026-05-15"));
        // 30-day period: 0.03 × 5 ÷ 30 = 0.005 → 0.00; 0.09 × 5 ÷ 30 =
        // 0.015 → 0.02; 100.01 × 15 ÷ 30 = 50.005 → 50.00.
        let accrued =
            |cents, day| accrued_interest(Money::from_minor(cents), start, end, date(day));
        assert_eq!(accrued(3, "2026-04-20"), Some(Money::from_minor(0)));
        assert_eq!(accrued(9, "2026-04-20"), Some(Money::from_minor(2)));
        assert_eq!(
            accrued(10_001, "2026-04-30"),
            Some(Money::from_minor(5_000))
        );
        assert_eq!(
            accrued(10_003, "2026-04-30"),
            Some(Money::from_minor(5_002))
        );
        // Before the period and after it: nothing and everything.
        assert_eq!(accrued(10_003, "2026-04-01"), Some(Money::ZERO));
        assert_eq!(
            accrued(10_003, "2026-06-01"),
            Some(Money::from_minor(10_003))
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
