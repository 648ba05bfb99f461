//! Repayment schedules, with no I/O.
//!
//! An approved loan is repaid in equal monthly installments (an annuity).
//! With monthly rate `r = annual / 12 / 100` the installment is
//! `P·r / (1 − (1+r)^−n)`, rounded half-even to the cent. Each month's
//! interest is the outstanding principal × `r`, rounded half-even; the rest
//! of the installment repays principal. The last installment takes exactly
//! the principal still outstanding (plus its interest), so the principals
//! add up to the loan amount to the cent. A 0 % loan splits the principal
//! evenly, rounded down, and the last installment takes the remainder.

use chrono::{Datelike, Months, NaiveDate};
use rust_decimal::Decimal;

use crate::money::{Money, Percent};

/// The longest term we schedule, in months.
pub const MAX_TERM_MONTHS: u32 = 360;

/// One row of a schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduledInstallment {
    /// 1-based.
    pub number: u32,
    pub due_date: NaiveDate,
    pub principal: Money,
    pub interest: Money,
}

impl ScheduledInstallment {
    pub fn amount(&self) -> Money {
        self.principal + self.interest
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// The regular (not the last) installment amount.
    pub installment_amount: Money,
    pub installments: Vec<ScheduledInstallment>,
}

impl Schedule {
    /// Σ (principal + interest) over the schedule.
    pub fn total_payable(&self) -> Money {
        self.installments
            .iter()
            .map(ScheduledInstallment::amount)
            .sum()
    }

    pub fn total_interest(&self) -> Money {
        self.installments.iter().map(|i| i.interest).sum()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("the term must be 1 to {MAX_TERM_MONTHS} months")]
    Term,
    #[error("the principal must be positive")]
    Principal,
    #[error("the figures are too large to compute")]
    Overflow,
    #[error("the due dates run past the calendar")]
    Calendar,
}

/// Builds the schedule of a loan of `principal` at `annual_rate` over
/// `term_months`, the first installment due on `first_due_date` and the
/// following ones on `day_of_month` of each next month (clamped to the
/// month's last day).
pub fn build_schedule(
    principal: Money,
    annual_rate: Percent,
    term_months: u32,
    first_due_date: NaiveDate,
    day_of_month: u32,
) -> Result<Schedule, ScheduleError> {
    if !(1..=MAX_TERM_MONTHS).contains(&term_months) {
        return Err(ScheduleError::Term);
    }
    if !principal.is_positive() {
        return Err(ScheduleError::Principal);
    }
    let due_dates = due_dates(first_due_date, day_of_month, term_months)?;
    let monthly_rate = annual_rate.as_decimal() / Decimal::from(1200);
    let (installment_amount, figures) = if monthly_rate.is_zero() {
        zero_rate_figures(principal, term_months)
    } else {
        annuity_figures(principal, monthly_rate, term_months)?
    };
    let installments = figures
        .into_iter()
        .zip(due_dates)
        .zip(1..)
        .map(
            |(((principal, interest), due_date), number)| ScheduledInstallment {
                number,
                due_date,
                principal,
                interest,
            },
        )
        .collect();
    Ok(Schedule {
        installment_amount,
        installments,
    })
}

/// Equal principal parts, rounded down; the last takes the remainder.
fn zero_rate_figures(principal: Money, term_months: u32) -> (Money, Vec<(Money, Money)>) {
    let (part, last) = principal.split_evenly(term_months);
    let mut figures = vec![(part, Money::ZERO); (term_months - 1) as usize];
    figures.push((last, Money::ZERO));
    (part, figures)
}

fn annuity_figures(
    principal: Money,
    monthly_rate: Decimal,
    term_months: u32,
) -> Result<(Money, Vec<(Money, Money)>), ScheduleError> {
    let amount = annuity_payment(principal, monthly_rate, term_months)?;
    let mut balance = principal;
    let mut figures = Vec::with_capacity(term_months as usize);
    for number in 1..=term_months {
        let interest = interest_on(balance, monthly_rate)?;
        let principal_part = if number == term_months {
            balance
        } else {
            // Never repay more principal than is left (possible only when
            // rounding has already repaid it all).
            let scheduled = amount
                .checked_sub(interest)
                .ok_or(ScheduleError::Overflow)?;
            scheduled.min(balance).max(Money::ZERO)
        };
        balance = balance
            .checked_sub(principal_part)
            .ok_or(ScheduleError::Overflow)?;
        figures.push((principal_part, interest));
    }
    Ok((amount, figures))
}

/// `P·r·(1+r)^n / ((1+r)^n − 1)`, the same as `P·r / (1 − (1+r)^−n)`,
/// rounded half-even to the cent.
fn annuity_payment(
    principal: Money,
    monthly_rate: Decimal,
    term_months: u32,
) -> Result<Money, ScheduleError> {
    let growth = power(Decimal::ONE + monthly_rate, term_months)?;
    let numerator = principal
        .to_decimal()
        .checked_mul(monthly_rate)
        .and_then(|value| value.checked_mul(growth))
        .ok_or(ScheduleError::Overflow)?;
    let amount = numerator
        .checked_div(growth - Decimal::ONE)
        .ok_or(ScheduleError::Overflow)?;
    Money::from_decimal_half_even(amount).ok_or(ScheduleError::Overflow)
}

/// `balance × r`, rounded half-even to the cent.
fn interest_on(balance: Money, monthly_rate: Decimal) -> Result<Money, ScheduleError> {
    let interest = balance
        .to_decimal()
        .checked_mul(monthly_rate)
        .ok_or(ScheduleError::Overflow)?;
    Money::from_decimal_half_even(interest).ok_or(ScheduleError::Overflow)
}

/// `base^exponent` by repeated squaring.
fn power(base: Decimal, exponent: u32) -> Result<Decimal, ScheduleError> {
    let mut result = Decimal::ONE;
    let mut square = base;
    let mut remaining = exponent;
    while remaining > 0 {
        if remaining & 1 == 1 {
            result = result.checked_mul(square).ok_or(ScheduleError::Overflow)?;
        }
        remaining >>= 1;
        if remaining > 0 {
            square = square.checked_mul(square).ok_or(ScheduleError::Overflow)?;
        }
    }
    Ok(result)
}

/// The due dates: `first` and then `day_of_month` of each following month,
/// clamped to the month's end (day 31 → Feb 28/29, Apr 30, …).
pub fn due_dates(
    first: NaiveDate,
    day_of_month: u32,
    count: u32,
) -> Result<Vec<NaiveDate>, ScheduleError> {
    let month_start = first.with_day(1).ok_or(ScheduleError::Calendar)?;
    (0..count)
        .map(|offset| {
            if offset == 0 {
                return Ok(first);
            }
            let month = month_start
                .checked_add_months(Months::new(offset))
                .ok_or(ScheduleError::Calendar)?;
            let day = day_of_month.clamp(1, days_in_month(month));
            month.with_day(day).ok_or(ScheduleError::Calendar)
        })
        .collect()
}

/// `date` plus one month, keeping the day where the month has it and
/// clamping to the month's end otherwise (Jan 31 → Feb 28/29).
pub fn one_month_after(date: NaiveDate) -> Option<NaiveDate> {
    date.checked_add_months(Months::new(1))
}

fn days_in_month(first_of_month: NaiveDate) -> u32 {
    first_of_month
        .checked_add_months(Months::new(1))
        .and_then(|next| next.pred_opt())
        .map_or(28, |last| last.day())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    fn percent(text: &str) -> Percent {
        Percent::parse(text).expect("valid percent")
    }

    fn cents(schedule: &Schedule) -> Vec<(i64, i64)> {
        schedule
            .installments
            .iter()
            .map(|i| (i.principal.minor(), i.interest.minor()))
            .collect()
    }

    /// 10 000.00 at 12 % over 12 months: r = 0.01, payment 888.4878… →
    /// 888.49. The figures were computed independently with Python's
    /// `decimal` at 50 digits using `(1+r)^−n` directly.
    #[test]
    fn golden_ten_thousand_at_twelve_percent_over_a_year() {
        let schedule = build_schedule(
            Money::from_minor(1_000_000),
            percent("12"),
            12,
            date(2026, 2, 15),
            15,
        )
        .expect("schedule");
        assert_eq!(schedule.installment_amount, Money::from_minor(88_849));
        assert_eq!(
            cents(&schedule),
            vec![
                (78_849, 10_000),
                (79_637, 9_212),
                (80_434, 8_415),
                (81_238, 7_611),
                (82_051, 6_798),
                (82_871, 5_978),
                (83_700, 5_149),
                (84_537, 4_312),
                (85_382, 3_467),
                (86_236, 2_613),
                (87_098, 1_751),
                (87_967, 880),
            ]
        );
        assert_eq!(
            schedule.installments[11].amount(),
            Money::from_minor(88_847)
        );
        assert_eq!(schedule.total_payable(), Money::from_minor(1_066_186));
        assert_eq!(schedule.total_interest(), Money::from_minor(66_186));
        assert_eq!(schedule.installments[11].due_date, date(2027, 1, 15));
    }

    /// 1 000.00 at 0 % over 3: 333.33, 333.33 and the remainder 333.34.
    #[test]
    fn golden_interest_free_split_with_the_remainder_last() {
        let schedule = build_schedule(
            Money::from_minor(100_000),
            percent("0"),
            3,
            date(2026, 3, 1),
            1,
        )
        .expect("schedule");
        assert_eq!(schedule.installment_amount, Money::from_minor(33_333));
        assert_eq!(
            cents(&schedule),
            vec![(33_333, 0), (33_333, 0), (33_334, 0)]
        );
        assert_eq!(schedule.total_payable(), Money::from_minor(100_000));
    }

    /// 5 000.00 at 7.5 % over 36, first due on the 31st. r = 0.00625;
    /// payment 155.5320… → 155.53 (also checked with Python's `decimal`). The day 31 is kept where months have
    /// it and clamped to the month's end where they do not.
    #[test]
    fn golden_five_thousand_at_seven_and_a_half_percent_due_on_the_31st() {
        let schedule = build_schedule(
            Money::from_minor(500_000),
            percent("7.5"),
            36,
            date(2026, 1, 31),
            31,
        )
        .expect("schedule");
        assert_eq!(schedule.installment_amount, Money::from_minor(15_553));
        let first = &schedule.installments[0];
        // 5000 × 0.00625 = 31.25 interest; 155.53 − 31.25 = 124.28 principal.
        assert_eq!(
            (first.principal.minor(), first.interest.minor()),
            (12_428, 3_125)
        );
        // Balance 4875.72 × 0.00625 = 30.47325 → 30.47.
        let second = &schedule.installments[1];
        assert_eq!(
            (second.principal.minor(), second.interest.minor()),
            (12_506, 3_047)
        );
        let last = &schedule.installments[35];
        assert_eq!(
            (last.principal.minor(), last.interest.minor()),
            (15_458, 97)
        );
        assert_eq!(schedule.total_payable(), Money::from_minor(559_910));
        let dates: Vec<NaiveDate> = schedule.installments[..5]
            .iter()
            .map(|i| i.due_date)
            .collect();
        assert_eq!(
            dates,
            vec![
                date(2026, 1, 31),
                date(2026, 2, 28),
                date(2026, 3, 31),
                date(2026, 4, 30),
                date(2026, 5, 31)
            ]
        );
        assert_eq!(
            schedule.installments[25].due_date,
            date(2028, 2, 29),
            "leap year"
        );
        let principal: i64 = schedule
            .installments
            .iter()
            .map(|i| i.principal.minor())
            .sum();
        assert_eq!(principal, 500_000);
    }

    #[test]
    fn one_month_after_clamps_to_the_month_end() {
        assert_eq!(one_month_after(date(2026, 1, 31)), Some(date(2026, 2, 28)));
        assert_eq!(one_month_after(date(2028, 1, 30)), Some(date(2028, 2, 29)));
        assert_eq!(one_month_after(date(2026, 12, 15)), Some(date(2027, 1, 15)));
    }

    #[test]
    fn out_of_range_terms_and_principals_are_refused() {
        let first = date(2026, 1, 1);
        assert_eq!(
            build_schedule(Money::from_minor(100), percent("5"), 0, first, 1),
            Err(ScheduleError::Term)
        );
        assert_eq!(
            build_schedule(Money::from_minor(100), percent("5"), 361, first, 1),
            Err(ScheduleError::Term)
        );
        assert_eq!(
            build_schedule(Money::ZERO, percent("5"), 12, first, 1),
            Err(ScheduleError::Principal)
        );
    }

    fn rates() -> impl Strategy<Value = Percent> {
        // 0 to 100 % with up to four decimals, zero included often.
        prop_oneof![
            Just(Percent::zero()),
            (0u32..=1_000_000).prop_map(|units| {
                let text = Decimal::new(i64::from(units), 4).to_string();
                Percent::parse(&text).expect("in range")
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn schedules_hold_their_invariants(
            principal in 10_000i64..=100_000_000,
            rate in rates(),
            term in 1u32..=MAX_TERM_MONTHS,
            day in 1u32..=31,
        ) {
            let first = date(2026, 1, day.min(28));
            let schedule = build_schedule(Money::from_minor(principal), rate, term, first, day)
                .expect("every allowed loan has a schedule");
            prop_assert_eq!(schedule.installments.len(), term as usize);
            let principals: i64 = schedule.installments.iter().map(|i| i.principal.minor()).sum();
            prop_assert_eq!(principals, principal, "principals sum to the amount");
            let total: i64 = schedule.installments.iter().map(|i| i.amount().minor()).sum();
            prop_assert_eq!(schedule.total_payable().minor(), total);
            for installment in &schedule.installments {
                prop_assert!(!installment.principal.is_negative() && !installment.interest.is_negative());
            }
            for pair in schedule.installments.windows(2) {
                prop_assert!(pair[1].interest <= pair[0].interest, "interest never increases");
                prop_assert!(pair[1].due_date > pair[0].due_date, "due dates increase");
            }
            // Every installment but the last is the regular amount, unless
            // rounding drift (large only at extreme rates and terms) has
            // already repaid the whole principal, which it then finishes.
            let mut balance = principal;
            for installment in &schedule.installments[..schedule.installments.len() - 1] {
                prop_assert!(
                    installment.amount() == schedule.installment_amount
                        || installment.principal.minor() == balance,
                    "installment {} is irregular", installment.number
                );
                balance -= installment.principal.minor();
            }
        }
    }
}
