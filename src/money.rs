//! Money and rates, with no I/O.
//!
//! An amount is an integer count of minor units (cents). It is parsed from
//! the decimal text a client sent (a JSON string or the literal digits of a
//! JSON number, never through a float), printed with exactly two decimals,
//! and every arithmetic step is overflow-checked. Rates are percentages held
//! as an integer count of ten-thousandths of a percent, so a rate is as
//! exact as the text it came from.
//!
//! Every computed amount — interest, a late fee, interest accrued by days,
//! a ratio — is one fraction of integers (the minor units times the rate's
//! own digits, over a power of ten or a day count), divided and rounded
//! half to even exactly once, at the end ([`divide_half_even`]). No decimal
//! with finitely many digits stands between the inputs and that rounding,
//! so an exact half-cent tie is seen as a tie and goes to the even cent.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// Minor units per major unit: every currency we serve has two decimals.
const MINOR_PER_MAJOR: i64 = 100;

/// An exact amount of money in minor units. May be negative in arithmetic;
/// requests only ever produce positive amounts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

/// Why a piece of text is not an amount of money.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MoneyParseError {
    #[error("must be a decimal amount such as \"1250.00\"")]
    Malformed,
    #[error("must have at most two decimal places")]
    TooManyDecimals,
    #[error("is too large")]
    TooLarge,
}

/// Why a requested amount is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("{0}")]
    Unreadable(MoneyParseError),
    #[error("must be between {min} and {max}")]
    OutOfRange { min: Money, max: Money },
}

impl Money {
    pub const ZERO: Money = Money(0);

    pub const fn from_minor(minor: i64) -> Self {
        Money(minor)
    }

    pub const fn minor(self) -> i64 {
        self.0
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// The smaller of two amounts.
    pub fn min(self, other: Money) -> Money {
        Money(self.0.min(other.0))
    }

    /// Zero for a negative amount.
    pub fn at_least_zero(self) -> Money {
        Money(self.0.max(0))
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }

    /// Parses plain decimal notation: optional `-`, digits, and at most two
    /// decimals after a `.` (`"1250"`, `"1250.5"`, `"1250.50"`). No
    /// exponents, no whitespace, no thousands separators, no `+`.
    pub fn parse_decimal(text: &str) -> Result<Money, MoneyParseError> {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (unsigned, None),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MoneyParseError::Malformed);
        }
        let fraction = fraction.unwrap_or("");
        if !fraction.bytes().all(|b| b.is_ascii_digit()) || unsigned.ends_with('.') {
            return Err(MoneyParseError::Malformed);
        }
        if fraction.len() > 2 {
            return Err(MoneyParseError::TooManyDecimals);
        }
        let whole: i64 = whole.parse().map_err(|_| MoneyParseError::TooLarge)?;
        let cents: i64 = match fraction.len() {
            0 => 0,
            1 => i64::from(fraction.as_bytes()[0] - b'0') * 10,
            _ => fraction.parse().map_err(|_| MoneyParseError::Malformed)?,
        };
        let magnitude = whole
            .checked_mul(MINOR_PER_MAJOR)
            .and_then(|minor| minor.checked_add(cents))
            .ok_or(MoneyParseError::TooLarge)?;
        Ok(Money(if negative { -magnitude } else { magnitude }))
    }

    /// Parses an amount that must lie between `min` and `max` inclusive.
    pub fn parse_within(text: &str, min: Money, max: Money) -> Result<Money, AmountError> {
        let amount = Money::parse_decimal(text).map_err(AmountError::Unreadable)?;
        if amount < min || amount > max {
            return Err(AmountError::OutOfRange { min, max });
        }
        Ok(amount)
    }

    /// Splits the amount into `parts` shares of whole cents: every share
    /// but the last is the amount ÷ `parts` rounded down, and the last
    /// takes the remainder, so the shares add up exactly. Returns (the
    /// regular share, the last share); `parts` of 0 is taken as 1.
    pub fn split_evenly(self, parts: u32) -> (Money, Money) {
        let parts = i64::from(parts.max(1));
        let share = Money(self.0.div_euclid(parts));
        let others = Money(share.0 * (parts - 1));
        (share, self - others)
    }

    /// `self × numerator ÷ denominator`, computed exactly and rounded half
    /// to even to the cent once. `None` when the denominator is not
    /// positive or the result does not fit in an amount.
    pub fn times_fraction(self, numerator: i64, denominator: i64) -> Option<Money> {
        let product = i128::from(self.0).checked_mul(i128::from(numerator))?;
        let rounded = divide_half_even(product, i128::from(denominator))?;
        i64::try_from(rounded).ok().map(Money)
    }

    /// The amount in major units as a float, for documentation only (an
    /// OpenAPI bound); never for arithmetic.
    pub fn approximate_major_units(self) -> f64 {
        // i64 → f64 loses nothing below 2^53 minor units.
        self.0 as f64 / MINOR_PER_MAJOR as f64
    }
}

/// `numerator ÷ denominator` rounded to the nearest integer, an exact half
/// going to the even neighbour. `None` when `denominator` is not positive.
pub fn divide_half_even(numerator: i128, denominator: i128) -> Option<i128> {
    if denominator <= 0 {
        return None;
    }
    let quotient = numerator.div_euclid(denominator);
    let remainder = numerator.rem_euclid(denominator);
    // remainder ∈ [0, denominator): compare it with half the denominator
    // without halving (2·remainder cannot overflow: remainder < denominator).
    let remainder_against_half = (remainder * 2).cmp(&denominator);
    Some(
        if rounds_up_half_even(remainder_against_half, quotient % 2 != 0) {
            quotient + 1
        } else {
            quotient
        },
    )
}

/// The half-even rule on a quotient rounded down: round up when the
/// remainder is more than half the divisor (`remainder_against_half` compares
/// 2·remainder with the divisor), or exactly half and the quotient is odd.
pub fn rounds_up_half_even(
    remainder_against_half: std::cmp::Ordering,
    quotient_is_odd: bool,
) -> bool {
    match remainder_against_half {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Equal => quotient_is_odd,
        std::cmp::Ordering::Less => false,
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        let per_major = MINOR_PER_MAJOR.unsigned_abs();
        write!(
            f,
            "{sign}{}.{:02}",
            magnitude / per_major,
            magnitude % per_major
        )
    }
}

impl FromStr for Money {
    type Err = MoneyParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Money::parse_decimal(text)
    }
}

/// On the wire money is always a string with two decimals.
impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Arithmetic on amounts is checked: an overflow is a bug (every amount a
/// request can bring is bounded far below `i64::MAX` minor units), so it
/// stops the operation with a panic instead of wrapping into a wrong
/// balance. Callers combining untrusted values use [`Money::checked_add`].
impl std::ops::Add for Money {
    type Output = Money;

    fn add(self, other: Money) -> Money {
        match self.checked_add(other) {
            Some(sum) => sum,
            None => panic!("money overflow: {self} + {other}"),
        }
    }
}

impl std::ops::Sub for Money {
    type Output = Money;

    fn sub(self, other: Money) -> Money {
        match self.checked_sub(other) {
            Some(difference) => difference,
            None => panic!("money overflow: {self} - {other}"),
        }
    }
}

impl std::ops::AddAssign for Money {
    fn add_assign(&mut self, other: Money) {
        *self = *self + other;
    }
}

impl std::ops::SubAssign for Money {
    fn sub_assign(&mut self, other: Money) {
        *self = *self - other;
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Self {
        iter.fold(Money::ZERO, |total, amount| total + amount)
    }
}

impl<'a> std::iter::Sum<&'a Money> for Money {
    fn sum<I: Iterator<Item = &'a Money>>(iter: I) -> Self {
        iter.copied().sum()
    }
}

/// A percentage such as an annual interest rate or a late-fee rate:
/// `"12.5"` means 12.5 %. At most four decimals, never negative, at most
/// 100. Held as an integer count of ten-thousandths of a percent
/// (`12.5` → `125_000`), so every computation with it is exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(u32);

/// Why a piece of text is not a percentage.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PercentParseError {
    #[error("must be a decimal percentage such as \"12.5\"")]
    Malformed,
    #[error("must have at most four decimal places")]
    TooManyDecimals,
    #[error("must be between 0 and 100")]
    OutOfRange,
}

impl Percent {
    pub const MAX_DECIMALS: u32 = 4;
    /// Ten-thousandths of a percent in one percent.
    pub const UNITS_PER_PERCENT: u32 = 10_000;
    /// Ten-thousandths of a percent in the whole (100 %).
    pub const UNITS_PER_WHOLE: u32 = 100 * Self::UNITS_PER_PERCENT;

    /// Parses plain decimal notation between 0 and 100 inclusive: digits,
    /// optionally a `.` and at most four more digits.
    pub fn parse(text: &str) -> Result<Percent, PercentParseError> {
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits_only = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        let well_formed = !whole.is_empty()
            && digits_only(whole)
            && digits_only(fraction)
            && !(text.ends_with('.'));
        if !well_formed {
            return Err(PercentParseError::Malformed);
        }
        if fraction.len() > Self::MAX_DECIMALS as usize {
            return Err(PercentParseError::TooManyDecimals);
        }
        let whole = whole.trim_start_matches('0');
        if whole.len() > 3 {
            return Err(PercentParseError::OutOfRange);
        }
        let whole: u32 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| PercentParseError::Malformed)?
        };
        let fraction_units: u32 = format!("{fraction:0<4}")
            .parse()
            .map_err(|_| PercentParseError::Malformed)?;
        let units = whole * Self::UNITS_PER_PERCENT + fraction_units;
        if units > Self::UNITS_PER_WHOLE {
            return Err(PercentParseError::OutOfRange);
        }
        Ok(Percent(units))
    }

    pub fn zero() -> Percent {
        Percent(0)
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// The percentage in ten-thousandths of a percent (`12.5` → `125000`).
    pub fn units(self) -> u32 {
        self.0
    }

    /// `amount × percent / 100`, rounded half to even to the cent once:
    /// `amount_minor × units ÷ 1 000 000`.
    pub fn of(self, amount: Money) -> Option<Money> {
        amount.times_fraction(i64::from(self.0), i64::from(Self::UNITS_PER_WHOLE))
    }
}

/// Printed with at least one decimal and no trailing zeros beyond it:
/// `12.0`, `12.5`, `7.25`.
impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / Self::UNITS_PER_PERCENT;
        let fraction = format!("{:04}", self.0 % Self::UNITS_PER_PERCENT);
        let fraction = fraction.trim_end_matches('0');
        let fraction = if fraction.is_empty() { "0" } else { fraction };
        write!(f, "{whole}.{fraction}")
    }
}

impl FromStr for Percent {
    type Err = PercentParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Percent::parse(text)
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_accepted_notations() {
        assert_eq!(Money::parse_decimal("1250"), Ok(Money(125_000)));
        assert_eq!(Money::parse_decimal("1250.5"), Ok(Money(125_050)));
        assert_eq!(Money::parse_decimal("1250.50"), Ok(Money(125_050)));
        assert_eq!(Money::parse_decimal("0.01"), Ok(Money(1)));
        assert_eq!(Money::parse_decimal("-3.07"), Ok(Money(-307)));
    }

    #[test]
    fn rejects_everything_else() {
        for text in [
            "", ".5", "5.", "1e3", "+5", " 5", "5 ", "1,000", "abc", "--1", "1.2.3", "NaN", "-",
        ] {
            assert_eq!(
                Money::parse_decimal(text),
                Err(MoneyParseError::Malformed),
                "{text:?}"
            );
        }
        assert_eq!(
            Money::parse_decimal("1.001"),
            Err(MoneyParseError::TooManyDecimals)
        );
        assert_eq!(
            Money::parse_decimal("99999999999999999999"),
            Err(MoneyParseError::TooLarge)
        );
        assert_eq!(
            Money::parse_decimal("92233720368547758.07"),
            Ok(Money(i64::MAX))
        );
        assert_eq!(
            Money::parse_decimal("92233720368547758.08"),
            Err(MoneyParseError::TooLarge)
        );
    }

    #[test]
    fn even_splits_give_the_remainder_to_the_last_share() {
        assert_eq!(
            Money(100_000).split_evenly(3),
            (Money(33_333), Money(33_334))
        );
        assert_eq!(Money(1_000).split_evenly(1), (Money(1_000), Money(1_000)));
        assert_eq!(Money(5).split_evenly(7), (Money(0), Money(5)));
    }

    #[test]
    fn bounded_amounts() {
        let (min, max) = (Money(10_000), Money(100_000_000));
        assert_eq!(Money::parse_within("100", min, max), Ok(Money(10_000)));
        assert_eq!(
            Money::parse_within("1000000.00", min, max),
            Ok(Money(100_000_000))
        );
        let below = Money::parse_within("99.99", min, max).map_err(|e| e.to_string());
        assert_eq!(
            below,
            Err("must be between 100.00 and 1000000.00".to_owned())
        );
        let unreadable = Money::parse_within("1.234", min, max).map_err(|e| e.to_string());
        assert_eq!(
            unreadable,
            Err("must have at most two decimal places".to_owned())
        );
    }

    #[test]
    fn formats_with_two_decimals() {
        assert_eq!(Money(125_000).to_string(), "1250.00");
        assert_eq!(Money(5).to_string(), "0.05");
        assert_eq!(Money(-5).to_string(), "-0.05");
        assert_eq!(Money(i64::MIN).to_string(), "-92233720368547758.08");
        assert_eq!(
            serde_json::to_string(&Money(1)).ok(),
            Some("\"0.01\"".to_owned())
        );
    }

    #[test]
    fn rounds_half_to_even() {
        // 12.5 cents, 13.5 cents, 12.51 cents, -12.5 cents, 250 cents.
        assert_eq!(divide_half_even(125, 10), Some(12));
        assert_eq!(divide_half_even(135, 10), Some(14));
        assert_eq!(divide_half_even(1251, 100), Some(13));
        assert_eq!(divide_half_even(-125, 10), Some(-12));
        assert_eq!(divide_half_even(-135, 10), Some(-14));
        assert_eq!(divide_half_even(-126, 10), Some(-13));
        assert_eq!(divide_half_even(2500, 10), Some(250));
        assert_eq!(divide_half_even(1, 0), None);
        // 1/3 of a cent is below the half; 2/3 above.
        assert_eq!(divide_half_even(1, 3), Some(0));
        assert_eq!(divide_half_even(2, 3), Some(1));
        assert_eq!(Money(1050).times_fraction(1, 2), Some(Money(525)));
        assert_eq!(Money(1051).times_fraction(1, 2), Some(Money(526)));
        assert_eq!(Money(1053).times_fraction(1, 2), Some(Money(526)));
        assert_eq!(Money(i64::MAX).times_fraction(2, 1), None);
    }

    #[test]
    fn percent_parses_formats_and_applies() {
        assert_eq!(
            Percent::parse("12.5").map(|p| p.to_string()),
            Ok("12.5".to_owned())
        );
        assert_eq!(
            Percent::parse("12").map(|p| p.to_string()),
            Ok("12.0".to_owned())
        );
        assert_eq!(
            Percent::parse("12.000").map(|p| p.to_string()),
            Ok("12.0".to_owned())
        );
        assert_eq!(
            Percent::parse("0").map(|p| p.to_string()),
            Ok("0.0".to_owned())
        );
        assert_eq!(
            Percent::parse("100.0001"),
            Err(PercentParseError::OutOfRange)
        );
        assert_eq!(
            Percent::parse("1.23456"),
            Err(PercentParseError::TooManyDecimals)
        );
        assert_eq!(Percent::parse("-1"), Err(PercentParseError::Malformed));
        assert_eq!(Percent::parse("1e2"), Err(PercentParseError::Malformed));
        for malformed in ["", ".5", "5.", "1.2.3", " 5", "5%", "+5", "1,5"] {
            assert_eq!(
                Percent::parse(malformed),
                Err(PercentParseError::Malformed),
                "{malformed:?}"
            );
        }
        assert_eq!(Percent::parse("18.25").map(Percent::units), Ok(182_500));
        assert_eq!(Percent::parse("0.0001").map(Percent::units), Ok(1));
        assert_eq!(
            Percent::parse("007.5000").map(|p| p.to_string()),
            Ok("7.5".to_owned())
        );
        assert_eq!(
            Percent::parse("7.50000"),
            Err(PercentParseError::TooManyDecimals)
        );
        assert_eq!(Percent::parse("100").map(Percent::units), Ok(1_000_000));
        assert_eq!(Percent::parse("0100.0"), Percent::parse("100"));
        assert_eq!(Percent::parse("1000"), Err(PercentParseError::OutOfRange));
        assert_eq!(
            Percent::parse("99999999999999999999999"),
            Err(PercentParseError::OutOfRange)
        );
        assert_eq!(
            Percent::parse("9.9999").map(|p| p.to_string()),
            Ok("9.9999".to_owned())
        );
        assert_eq!(
            Percent::parse("0.05").map(|p| p.to_string()),
            Ok("0.05".to_owned())
        );
        // 5 % of 10.50 is 0.525, which rounds to the even cent 0.52.
        let five = Percent::parse("5").expect("percent");
        assert_eq!(five.of(Money(1050)), Some(Money(52)));
        assert_eq!(five.of(Money(1070)), Some(Money(54)));
        // 2.5 % of 0.20 is half a cent (→ 0.00), of 0.60 one and a half
        // (→ 0.02); 3.3333 % of 0.15 is 0.0049999… (→ 0.00).
        let two_and_a_half = Percent::parse("2.5").expect("percent");
        assert_eq!(two_and_a_half.of(Money(20)), Some(Money(0)));
        assert_eq!(two_and_a_half.of(Money(60)), Some(Money(2)));
        let third = Percent::parse("3.3333").expect("percent");
        assert_eq!(third.of(Money(15)), Some(Money(0)));
        assert_eq!(third.of(Money(16)), Some(Money(1)));
    }

    #[test]
    fn arithmetic_is_exact_and_checked() {
        let amounts = [Money(1_050), Money(-50), Money(2)];
        assert_eq!(amounts.iter().sum::<Money>(), Money(1_002));
        assert_eq!(Money(1_050) - Money(2_000), Money(-950));
        let mut running = Money(10);
        running += Money(5);
        running -= Money(20);
        assert_eq!(running, Money(-5));
        assert_eq!(Money(i64::MAX).checked_add(Money(1)), None);
        assert!(std::panic::catch_unwind(|| Money(i64::MAX) + Money(1)).is_err());
        assert!(std::panic::catch_unwind(|| Money(i64::MIN) - Money(1)).is_err());
        assert!(
            std::panic::catch_unwind(|| [Money(i64::MAX), Money(1)].into_iter().sum::<Money>())
                .is_err()
        );
    }

    proptest! {
        #[test]
        fn formatting_then_parsing_is_the_identity(minor in any::<i64>()) {
            prop_assert_eq!(Money::parse_decimal(&Money(minor).to_string()), Ok(Money(minor)));
        }

        #[test]
        fn half_even_division_matches_the_definition(
            numerator in -1_000_000_000_000i128..1_000_000_000_000,
            denominator in 1i128..1_000_000,
        ) {
            let rounded = divide_half_even(numerator, denominator).expect("positive denominator");
            // |numerator/denominator − rounded| ≤ ½, and = ½ only with an even result.
            let distance = (numerator - rounded * denominator).abs() * 2;
            prop_assert!(distance <= denominator);
            if distance == denominator {
                prop_assert_eq!(rounded % 2, 0);
            }
        }

        #[test]
        fn percent_text_round_trips(units in 0u32..=1_000_000) {
            let percent = Percent(units);
            prop_assert_eq!(Percent::parse(&percent.to_string()), Ok(percent));
        }
    }
}
