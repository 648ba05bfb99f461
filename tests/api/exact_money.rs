//! Exact interest at half-cent ties (API.md § Loans: `r = annual / 12 /
//! 100` is exact, so a half-cent tie is a tie and rounds to the even cent).
//!
//! The schedules are checked against a reference written here with exact
//! rationals (`num-rational`), straight from the contract's formulas —
//! `P·r / (1 − (1+r)^−n)`, interest = balance × r — with no algebra
//! shared with the service's code. The tie searches find, by arithmetic
//! rather than by hand, the amounts whose interest or annuity amount lands
//! exactly on half a cent.

use chrono::NaiveDate;
use loan_tracker::money::{Money, Percent};
use loan_tracker::schedule::{MonthlyRate, Reamortization, build_schedule, reamortize};
use num_bigint::BigInt;
use num_rational::BigRational;
use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TestApp, TestUser};

/// Ten-thousandths of a percent in 100 % × 12 months: `r = units / this`.
const MONTHLY_DENOMINATOR: i64 = 12_000_000;
/// The default configuration's smallest and largest loan, in cents.
const MIN_AMOUNT: i64 = 10_000;
const MAX_AMOUNT: i64 = 100_000_000;

// ---------------------------------------------------------------------------
// The reference
// ---------------------------------------------------------------------------

fn rational(numerator: i64, denominator: i64) -> BigRational {
    BigRational::new(BigInt::from(numerator), BigInt::from(denominator))
}

/// Rounds an exact rational half to even.
fn half_even(value: &BigRational) -> i64 {
    let floor = value.floor();
    let fraction = value - &floor;
    let half = rational(1, 2);
    let floor: i64 = floor.to_integer().try_into().expect("fits");
    if fraction > half || (fraction == half && floor % 2 != 0) {
        floor + 1
    } else {
        floor
    }
}

fn monthly_rate(units: u32) -> BigRational {
    rational(i64::from(units), MONTHLY_DENOMINATOR)
}

/// `P·r / (1 − (1+r)^−n)`, half-even (r > 0).
fn reference_annuity(principal: i64, r: &BigRational, term: u32) -> i64 {
    let one = rational(1, 1);
    let growth = (&one + r).pow(i32::try_from(term).expect("term"));
    let value = rational(principal, 1) * r / (&one - growth.recip());
    half_even(&value)
}

/// The contract's rows: each month's interest = balance × r half-even, its
/// principal = amount − interest (never more than is left), the last takes
/// the balance.
fn reference_rows(principal: i64, r: &BigRational, amount: i64, term: u32) -> Vec<(i64, i64)> {
    let mut balance = principal;
    (1..=term)
        .map(|number| {
            let interest = half_even(&(rational(balance, 1) * r));
            let part = if number == term {
                balance
            } else {
                (amount - interest).clamp(0, balance)
            };
            balance -= part;
            (part, interest)
        })
        .collect()
}

/// `REDUCE_TERM`: installments of `amount` until the balance plus its
/// interest fits in one; `None` when an installment would not cover its
/// interest or the term would pass 360 months.
fn reference_level_rows(base: i64, r: &BigRational, amount: i64) -> Option<Vec<(i64, i64)>> {
    let mut balance = base;
    let mut rows = Vec::new();
    while balance > 0 {
        if rows.len() == 360 {
            return None;
        }
        let interest = half_even(&(rational(balance, 1) * r));
        if balance + interest <= amount {
            rows.push((balance, interest));
            break;
        }
        if amount <= interest {
            return None;
        }
        rows.push((amount - interest, interest));
        balance -= amount - interest;
    }
    Some(rows)
}

fn percent(units: u32) -> Percent {
    Percent::parse(&format!("{}.{:04}", units / 10_000, units % 10_000)).expect("percent")
}

fn first_due() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 2, 15).expect("date")
}

fn rows_of(schedule: &loan_tracker::schedule::Schedule) -> Vec<(i64, i64)> {
    schedule
        .installments
        .iter()
        .map(|row| (row.principal.minor(), row.interest.minor()))
        .collect()
}

/// Whether `r = units / 12 000 000` has no finite decimal expansion: its
/// reduced denominator keeps the factor 3 of the 12.
fn non_terminating(units: u32) -> bool {
    !units.is_multiple_of(3)
}

// ---------------------------------------------------------------------------
// Against the reference
// ---------------------------------------------------------------------------

fn rate_units() -> impl Strategy<Value = u32> {
    prop_oneof![
        // Any rate with up to four decimals.
        1u32..=1_000_000,
        // Two decimals, like most quoted rates.
        (1u32..=10_000).prop_map(|hundredths| hundredths * 100),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_schedule_equals_the_exact_reference(
        principal in MIN_AMOUNT..=MAX_AMOUNT,
        units in rate_units(),
        term in 1u32..=360,
    ) {
        let schedule = build_schedule(Money::from_minor(principal), percent(units), term, first_due(), 15)
            .expect("schedule");
        let r = monthly_rate(units);
        let amount = reference_annuity(principal, &r, term);
        prop_assert_eq!(schedule.installment_amount.minor(), amount);
        prop_assert_eq!(rows_of(&schedule), reference_rows(principal, &r, amount, term));
    }

    #[test]
    fn every_reamortization_equals_the_exact_reference(
        base in 100i64..=MAX_AMOUNT,
        units in rate_units(),
        count in 1u32..=360,
        stretch in 1i64..=4,
    ) {
        let r = monthly_rate(units);
        let rate = percent(units);
        let kept_count = reamortize(Money::from_minor(base), rate, Reamortization::KeepCount(count), 3, first_due(), 15)
            .expect("schedule");
        let amount = reference_annuity(base, &r, count);
        prop_assert_eq!(kept_count.installment_amount.minor(), amount);
        prop_assert_eq!(rows_of(&kept_count), reference_rows(base, &r, amount, count));

        // REDUCE_TERM with an amount above the first month's interest (a
        // multiple of the annuity amount keeps the term in range).
        let level = amount * stretch;
        let kept_amount = reamortize(Money::from_minor(base), rate, Reamortization::KeepAmount(Money::from_minor(level)), 3, first_due(), 15);
        let expected = reference_level_rows(base, &r, level);
        prop_assert_eq!(kept_amount.ok().map(|schedule| rows_of(&schedule)), expected);
    }
}

// ---------------------------------------------------------------------------
// Tie searches
// ---------------------------------------------------------------------------

/// `balance × units / 12 000 000` rounded half-even, from its exact
/// quotient and remainder (what the reference computes, in integers).
fn interest_half_even(balance: i64, units: u32) -> (i64, bool) {
    let product = i128::from(balance) * i128::from(units);
    let denominator = i128::from(MONTHLY_DENOMINATOR);
    let (quotient, remainder) = (product / denominator, product % denominator);
    let tie = remainder * 2 == denominator;
    let up = remainder * 2 > denominator || (tie && quotient % 2 != 0);
    (i64::try_from(quotient).expect("fits") + i64::from(up), tie)
}

/// Every quoted rate with two decimals whose monthly rate does not
/// terminate: step through the balances from 100.00 until one's month of
/// interest is exactly half a cent, then check that month — and the whole
/// 12-month schedule of a loan of that amount — against the reference.
#[test]
fn a_search_over_balances_finds_half_cent_ties_and_each_rounds_to_even() {
    let mut ties = 0u32;
    let mut rounded_up = 0u32;
    for units in (100u32..=1_000_000)
        .step_by(100)
        .filter(|u| non_terminating(*u))
    {
        // balance × units mod 12 000 000, kept by addition as the balance
        // grows one cent at a time.
        let step = i64::from(units) % MONTHLY_DENOMINATOR;
        let mut residue = (MIN_AMOUNT * i64::from(units)) % MONTHLY_DENOMINATOR;
        let mut balance = MIN_AMOUNT;
        while residue * 2 != MONTHLY_DENOMINATOR && balance < MIN_AMOUNT + MONTHLY_DENOMINATOR {
            balance += 1;
            residue = (residue + step) % MONTHLY_DENOMINATOR;
        }
        if residue * 2 != MONTHLY_DENOMINATOR {
            continue; // an odd reduced denominator: this rate never ties
        }
        let (expected, tie) = interest_half_even(balance, units);
        assert!(tie);
        let rate = MonthlyRate::of(percent(units));
        let interest = rate
            .interest_on(Money::from_minor(balance))
            .expect("interest");
        assert_eq!(
            interest.minor(),
            expected,
            "rate {units}, balance {balance}"
        );
        ties += 1;
        rounded_up += u32::from(
            i128::from(expected) * i128::from(MONTHLY_DENOMINATOR)
                > i128::from(balance) * i128::from(units),
        );
        if units % 1_700 == 0 || units == 182_500 {
            let schedule = build_schedule(
                Money::from_minor(balance),
                percent(units),
                12,
                first_due(),
                15,
            )
            .expect("schedule");
            let r = monthly_rate(units);
            let amount = reference_annuity(balance, &r, 12);
            assert_eq!(
                rows_of(&schedule),
                reference_rows(balance, &r, amount, 12),
                "rate {units}"
            );
            assert_eq!(schedule.installments[0].interest, interest);
        }
    }
    // Both directions occur, so the search found real ties.
    assert!(ties > 3_000, "{ties} ties");
    assert!(
        rounded_up > ties / 3 && rounded_up < 2 * ties / 3,
        "{rounded_up} of {ties}"
    );
}

/// Every rate with up to four decimals whose monthly rate does not
/// terminate: its ties repeat every reduced denominator `d` of `r` (at
/// `d/2 + k·d` when `d` is even, as `units/gcd` is then odd), so three
/// tie balances per rate — among them the largest amounts — are checked.
#[test]
fn every_four_decimal_rate_rounds_its_ties_to_even() {
    let mut ties = 0u32;
    for units in (1u32..=1_000_000).filter(|u| non_terminating(*u)) {
        let period = MONTHLY_DENOMINATOR / gcd(i64::from(units), MONTHLY_DENOMINATOR);
        if period % 2 != 0 {
            continue;
        }
        let rate = MonthlyRate::of(percent(units));
        let largest = period / 2 + (MAX_AMOUNT - period / 2) / period * period;
        for balance in [period / 2, period / 2 + period, largest] {
            let (expected, tie) = interest_half_even(balance, units);
            assert!(tie, "rate {units}, balance {balance}");
            let interest = rate
                .interest_on(Money::from_minor(balance))
                .expect("interest");
            assert_eq!(
                interest.minor(),
                expected,
                "rate {units}, balance {balance}"
            );
            ties += 1;
        }
    }
    assert!(ties > 1_000_000, "{ties} ties");
}

/// Every annuity amount that is exactly half a cent, for every rate with up
/// to four decimals and every term from 2 months (a 1-month annuity is
/// `P·(1+r)`, whose ties are those of a month's interest above), among the
/// amounts the default configuration allows. With `r = a/d` in lowest terms
/// the amount is `P·K/N`, `K = a·(d+a)^n`, `N = d·((d+a)^n − d^n)`; in
/// lowest terms `K'/N'` a tie needs `N'` even and `P ≡ N'/2 (mod N')`. As
/// `N' ≥ n·d^n`, only short terms at small denominators can tie, and a
/// rate's terms stop as soon as that bound passes the largest amount.
#[test]
fn every_annuity_amount_at_an_exact_half_cent_rounds_to_even() {
    let mut ties = 0u32;
    for units in (1u32..=1_000_000).filter(|u| non_terminating(*u)) {
        let common = gcd(i64::from(units), MONTHLY_DENOMINATOR);
        let (a, d) = (
            i128::from(units) / i128::from(common),
            i128::from(MONTHLY_DENOMINATOR / common),
        );
        for term in 2u32.. {
            let lower_bound = i128::from(term).saturating_mul(d.saturating_pow(term));
            if lower_bound / 2 > i128::from(MAX_AMOUNT) {
                break;
            }
            let grown = (d + a).pow(term);
            let numerator = a * grown;
            let denominator = d * (grown - d.pow(term));
            let reduced = denominator / gcd_wide(numerator, denominator);
            if reduced % 2 != 0 || reduced / 2 > i128::from(MAX_AMOUNT) {
                continue;
            }
            let mut principal = reduced / 2;
            while principal < i128::from(MIN_AMOUNT) {
                principal += reduced;
            }
            if principal > i128::from(MAX_AMOUNT) {
                continue;
            }
            let principal = i64::try_from(principal).expect("fits");
            let r = monthly_rate(units);
            let exact = rational(principal, 1) * &r
                / (rational(1, 1) - (rational(1, 1) + &r).pow(-i32::try_from(term).expect("term")));
            assert_eq!(
                exact.denom(),
                &BigInt::from(2),
                "a tie at {units} over {term}"
            );
            let schedule = build_schedule(
                Money::from_minor(principal),
                percent(units),
                term,
                first_due(),
                15,
            )
            .expect("schedule");
            let amount = half_even(&exact);
            assert_eq!(
                schedule.installment_amount.minor(),
                amount,
                "rate {units}, {term} months, principal {principal}"
            );
            assert_eq!(
                rows_of(&schedule),
                reference_rows(principal, &r, amount, term)
            );
            ties += 1;
        }
    }
    assert!(ties > 100, "{ties} ties");
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.abs().max(1)
}

fn gcd_wide(mut a: i128, mut b: i128) -> i128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.abs().max(1)
}

#[test]
fn the_monthly_rate_is_exact_in_lowest_terms() {
    let rate = MonthlyRate::of(Percent::parse("18.25").expect("rate"));
    // 928 800 cents × 73 / 4 800 = 14 125.5 cents exactly: a tie, to even.
    assert_eq!(
        rate.interest_on(Money::from_minor(928_800)),
        Ok(Money::from_minor(14_126))
    );
    assert_eq!(
        rate.interest_on(Money::from_minor(122_400)),
        Ok(Money::from_minor(1_862))
    );
    // 14 124.5 → 14 124 (already even).
    assert_eq!(
        rate.interest_on(Money::from_minor(928_734)),
        Ok(Money::from_minor(14_124))
    );
}

// ---------------------------------------------------------------------------
// Through the API: the figures the outside probe found
// ---------------------------------------------------------------------------

fn installment(loan: &Value, index: usize) -> (&str, &str) {
    let row = &loan["schedule"][index];
    (
        row["principal"].as_str().expect("principal"),
        row["interest"].as_str().expect("interest"),
    )
}

/// A borrower's 12-month loan of `amount` approved at 18.25 %, first due
/// 2026-02-15: the borrower, the loan's id and the approved loan.
async fn approved_at_18_25(app: &TestApp, amount: &str) -> (TestUser, Uuid, Value) {
    let borrower = app.register("borrower").await;
    let admin = app.admin().await;
    let loan_id = app.apply(&borrower, amount, 12).await;
    let loan = app
        .approve(
            &admin,
            loan_id,
            Some(json!({ "annualInterestRate": "18.25", "firstDueDate": "2026-02-15" })),
        )
        .await;
    (borrower, loan_id, loan)
}

#[tokio::test]
async fn a_loan_at_a_half_cent_tie_has_the_even_cent_everywhere() {
    let app = TestApp::spawn().await;
    let (borrower, loan_id, loan) = approved_at_18_25(&app, "9288.00").await;
    // 9288.00 × 18.25 / 1200 = 141.255 exactly → 141.26.
    assert_eq!(installment(&loan, 0), ("711.37", "141.26"));
    assert_eq!(installment(&loan, 11), ("839.84", "12.77"));
    assert_eq!(loan["installmentAmount"], "852.63");
    assert_eq!(loan["schedule"][11]["amountDue"], "852.61");
    assert_eq!(loan["totalPayable"], "10231.54");
    assert_eq!(loan["outstanding"], "10231.54");

    // The payoff quote on the first due date: installment 1 whole, then
    // principal only (no day of the second period has passed).
    let quote = app
        .get(
            &format!("/loans/{loan_id}/payoff?asOf=2026-02-15"),
            &borrower.token,
        )
        .await;
    quote.assert_status(200);
    assert_eq!(quote.body["interest"], "141.26");
    assert_eq!(quote.body["total"], "9429.26");
}

#[tokio::test]
async fn a_smaller_loan_at_the_same_rate_ties_too() {
    let app = TestApp::spawn().await;
    let (_, _, loan) = approved_at_18_25(&app, "1224.00").await;
    // 1224.00 × 18.25 / 1200 = 18.615 exactly → 18.62.
    assert_eq!(installment(&loan, 0), ("93.74", "18.62"));
    assert_eq!(loan["installmentAmount"], "112.36");
    assert_eq!(loan["totalPayable"], "1348.34");
}

#[tokio::test]
async fn a_prepayment_that_leaves_a_tie_reschedules_on_the_even_cent() {
    let app = TestApp::spawn().await;
    let (borrower, loan_id, _) = approved_at_18_25(&app, "20000.00").await;
    // Nothing is due yet: all 10 712.00 prepays principal, leaving 9 288.00
    // over the 12 open installments.
    let paid = app
        .post(
            &format!("/payments/{loan_id}"),
            Some(&borrower.token),
            json!({ "amount": "10712.00", "excess": "REDUCE_INSTALLMENT" }),
        )
        .await;
    paid.assert_status(201);
    let loan = app.loan_body(&borrower.token, &loan_id).await;
    assert_eq!(installment(&loan, 0), ("711.37", "141.26"));
    assert_eq!(installment(&loan, 11), ("839.84", "12.77"));
    assert_eq!(loan["installmentAmount"], "852.63");
    // 20 000.00 + the new schedule's 943.54 of interest.
    assert_eq!(loan["totalPayable"], "20943.54");
    assert_eq!(loan["outstanding"], "10231.54");
}
