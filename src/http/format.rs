//! Wire formats shared by every view.

use crate::money::Money;

/// Timestamps go out as RFC 3339 UTC with whole seconds:
/// `2026-11-24T15:04:05Z`.
pub mod timestamp {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(
        moment: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&moment.to_rfc3339_opts(SecondsFormat::Secs, true))
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(
            moment: &Option<DateTime<Utc>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match moment {
                Some(moment) => super::serialize(moment, serializer),
                None => serializer.serialize_none(),
            }
        }
    }
}

/// A response body already serialised to JSON (a cached view, or the
/// stored answer an idempotent retry gets again): sent as it is, with the
/// JSON content type. Cloning it shares the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawJson(axum::body::Bytes);

impl RawJson {
    /// The JSON of `view`.
    pub fn of(view: &impl serde::Serialize) -> serde_json::Result<RawJson> {
        serde_json::to_vec(view).map(|json| RawJson(json.into()))
    }

    /// Text known to be JSON (read back from where this service stored it).
    pub fn from_stored(text: &str) -> RawJson {
        RawJson(axum::body::Bytes::copy_from_slice(text.as_bytes()))
    }

    pub fn as_text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }
}

impl axum::response::IntoResponse for RawJson {
    fn into_response(self) -> axum::response::Response {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.0,
        )
            .into_response()
    }
}

/// Whether the request's `Accept` ranks `text/csv` above JSON (see
/// [`ranks_csv_first`]).
pub fn prefers_csv(headers: &axum::http::HeaderMap) -> bool {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    ranks_csv_first(accept)
}

/// Whether `accept` ranks `text/csv` above JSON: its quality is positive
/// and higher than that of `application/json` (or `application/*`,
/// `*/*`); on a tie, the one listed first.
fn ranks_csv_first(accept: &str) -> bool {
    let mut csv: Option<(f32, usize)> = None;
    let mut json: Option<(f32, usize)> = None;
    for (position, range) in accept.split(',').enumerate() {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let quality = parts
            .filter_map(|parameter| parameter.trim().strip_prefix("q="))
            .find_map(|value| value.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let slot = match media.as_str() {
            "text/csv" => &mut csv,
            "application/json" | "application/*" | "*/*" => &mut json,
            _ => continue,
        };
        // The most specific range is listed once in practice; keep the best.
        if slot.is_none_or(|(best, _)| quality > best) {
            *slot = Some((quality, position));
        }
    }
    match (csv, json) {
        (Some((csv_q, _)), _) if csv_q <= 0.0 => false,
        (Some(_), None) => true,
        (Some((csv_q, csv_at)), Some((json_q, json_at))) => {
            csv_q > json_q || (csv_q == json_q && csv_at < json_at)
        }
        (None, _) => false,
    }
}

/// `Money` on the wire: a string with exactly two decimals.
impl utoipa::PartialSchema for Money {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(r"^-?[0-9]+\.[0-9]{2}$"))
            .description(Some(
                "An amount of money with exactly two decimals, e.g. \"1250.00\".",
            ))
            .examples(["1250.00"])
            .into()
    }
}

impl utoipa::ToSchema for Money {}

/// `Percent` on the wire: a decimal string of percent.
impl utoipa::PartialSchema for crate::money::Percent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(r"^[0-9]+\.[0-9]{1,4}$"))
            .description(Some(
                "A percentage as a decimal string: \"12.5\" means 12.5 %.",
            ))
            .examples(["12.5"])
            .into()
    }
}

impl utoipa::ToSchema for crate::money::Percent {}

/// The schema of a decimal figure in a request: a string matching
/// `pattern` or a JSON number within `minimum..=maximum`. The number's
/// precision is said in `description`, not with `multipleOf`: validators
/// check that in binary floating point, where 19.99 is no multiple of
/// 0.01, and would refuse what the service accepts.
fn decimal_input_schema(
    description: &str,
    pattern: &str,
    minimum: f64,
    maximum: f64,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(pattern)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .minimum(Some(minimum))
                .maximum(Some(maximum)),
        )
        .description(Some(description))
        .into()
}

/// A loan amount in a request. The bounds (`LOAN_MIN_AMOUNT`,
/// `LOAN_MAX_AMOUNT`) are configuration, so this placeholder is replaced by
/// [`amount_input_schema`] when the document is assembled.
pub struct LoanAmountInput;

impl utoipa::PartialSchema for LoanAmountInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        amount_input_schema(Money::from_minor(10_000), Money::from_minor(100_000_000))
    }
}

impl utoipa::ToSchema for LoanAmountInput {}

/// A payment amount in a request: positive and at most `LOAN_MAX_AMOUNT`
/// (and never more than the loan still owes). Replaced like
/// [`LoanAmountInput`].
pub struct PaymentAmountInput;

impl utoipa::PartialSchema for PaymentAmountInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        amount_input_schema(Money::from_minor(1), Money::from_minor(100_000_000))
    }
}

impl utoipa::ToSchema for PaymentAmountInput {}

/// The schema of an amount in a request between `min` and `max`
/// inclusive: a decimal string with at most two decimals, or a JSON number.
pub fn amount_input_schema(
    min: Money,
    max: Money,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    decimal_input_schema(
        &format!(
            "An amount from {min} to {max} with at most two decimals, as a string (\"1250.50\") or a JSON number (1250.50); a number with more decimals is refused (422) like such a string."
        ),
        &amount_pattern(min, max),
        min.approximate_major_units(),
        max.approximate_major_units(),
    )
}

/// A regular expression matching exactly the decimal strings (digits
/// without leading zeros, at most two decimals) whose value lies between
/// `min` and `max`, both positive.
pub fn amount_pattern(min: Money, max: Money) -> String {
    let (min, max) = (min.minor().max(0), max.minor().max(0));
    let (min_whole, min_cents) = (min / 100, min % 100);
    let (max_whole, max_cents) = (max / 100, max % 100);
    let mut alternatives = Vec::new();
    if min_whole == max_whole {
        alternatives.push(format!(
            "{min_whole}{}",
            fraction_pattern(min_cents, max_cents)
        ));
    } else {
        alternatives.push(format!("{min_whole}{}", fraction_pattern(min_cents, 99)));
        if min_whole + 1 < max_whole {
            alternatives.push(format!(
                "{}(\\.[0-9]{{1,2}})?",
                whole_range_pattern(min_whole + 1, max_whole - 1)
            ));
        }
        alternatives.push(format!("{max_whole}{}", fraction_pattern(0, max_cents)));
    }
    format!("^({})$", alternatives.join("|"))
}

/// The decimals (none, one or two digits) worth `low..=high` cents.
fn fraction_pattern(low: i64, high: i64) -> String {
    let mut forms = Vec::new();
    if low == 0 {
        forms.push(String::new());
    }
    let tenths: Vec<i64> = (0..10)
        .filter(|d| (low..=high).contains(&(d * 10)))
        .collect();
    if let (Some(first), Some(last)) = (tenths.first(), tenths.last()) {
        forms.push(format!("\\.[{first}-{last}]"));
    }
    forms.push(format!(
        "\\.{}",
        fixed_width_pattern(&format!("{low:02}"), &format!("{high:02}"))
    ));
    match forms.as_slice() {
        [only] => only.clone(),
        _ if forms[0].is_empty() => format!("({})?", forms[1..].join("|")),
        _ => format!("({})", forms.join("|")),
    }
}

/// Whole numbers `low..=high` written without leading zeros.
fn whole_range_pattern(low: i64, high: i64) -> String {
    let mut alternatives = Vec::new();
    let mut width_start = low;
    while width_start <= high {
        let width = width_start.to_string().len();
        let width_end = high.min(10_i64.pow(width as u32) - 1);
        alternatives.push(fixed_width_pattern(
            &width_start.to_string(),
            &width_end.to_string(),
        ));
        width_start = width_end + 1;
    }
    format!("({})", alternatives.join("|"))
}

/// Digit strings of one width between `low` and `high` (same width,
/// `low <= high`).
fn fixed_width_pattern(low: &str, high: &str) -> String {
    let (Some(low_first), Some(high_first)) = (low.chars().next(), high.chars().next()) else {
        return String::new();
    };
    let (low_rest, high_rest) = (&low[1..], &high[1..]);
    if low_first == high_first {
        return format!("{low_first}{}", fixed_width_pattern(low_rest, high_rest));
    }
    let any_rest = if low_rest.is_empty() {
        String::new()
    } else {
        format!("[0-9]{{{}}}", low_rest.len())
    };
    let low_full = low_rest.bytes().all(|b| b == b'0');
    let high_full = high_rest.bytes().all(|b| b == b'9');
    let digit = |c: char| c.to_digit(10).map_or(0, i64::from);
    let middle_from = digit(low_first) + i64::from(!low_full);
    let middle_to = digit(high_first) - i64::from(!high_full);
    let mut alternatives = Vec::new();
    if !low_full {
        let nines = "9".repeat(low_rest.len());
        alternatives.push(format!(
            "{low_first}{}",
            fixed_width_pattern(low_rest, &nines)
        ));
    }
    if middle_from <= middle_to {
        alternatives.push(format!("[{middle_from}-{middle_to}]{any_rest}"));
    }
    if !high_full {
        let zeros = "0".repeat(high_rest.len());
        alternatives.push(format!(
            "{high_first}{}",
            fixed_width_pattern(&zeros, high_rest)
        ));
    }
    match alternatives.as_slice() {
        [only] => only.clone(),
        _ => format!("({})", alternatives.join("|")),
    }
}

/// An annual interest rate in a request: 0 to 100 percent, at most four
/// decimals.
pub struct RateInput;

impl utoipa::PartialSchema for RateInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        decimal_input_schema(
            "A percentage from 0 to 100 with at most four decimals, as a string (\"9.5\") or a JSON number (9.5); a number with more decimals is refused (422) like such a string.",
            r"^([0-9]|[1-9][0-9])(\.[0-9]{1,4})?$|^100(\.0{1,4})?$",
            0.0,
            100.0,
        )
    }
}

impl utoipa::ToSchema for RateInput {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn matches(pattern: &str, text: &str) -> bool {
        regex::Regex::new(pattern).expect("pattern").is_match(text)
    }

    #[test]
    fn the_default_loan_bounds() {
        let pattern = amount_pattern(Money::from_minor(10_000), Money::from_minor(100_000_000));
        for good in [
            "100",
            "100.0",
            "100.00",
            "1250.5",
            "999999.99",
            "1000000",
            "1000000.00",
        ] {
            assert!(matches(&pattern, good), "{good}");
        }
        for bad in [
            "99.99",
            "0100",
            "1000000.01",
            "1000001",
            "12.345",
            "",
            "1e3",
        ] {
            assert!(!matches(&pattern, bad), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn the_pattern_accepts_exactly_the_amounts_within_bounds(
            min in 1i64..2_000_000,
            span in 0i64..5_000_000,
            probe in 0i64..8_000_000,
            decimals in 0usize..3,
        ) {
            let max = min + span;
            let pattern = amount_pattern(Money::from_minor(min), Money::from_minor(max));
            let whole = probe / 100;
            let cents = probe % 100;
            // The probe written with 0, 1 or 2 decimals (dropping digits
            // changes its value, which is what the bounds then judge).
            let (text, value) = match decimals {
                0 => (whole.to_string(), whole * 100),
                1 => (format!("{whole}.{}", cents / 10), whole * 100 + cents / 10 * 10),
                _ => (format!("{whole}.{cents:02}"), probe),
            };
            prop_assert_eq!(
                matches(&pattern, &text),
                (min..=max).contains(&value),
                "{} against {}..={} with {}", text, min, max, pattern
            );
        }
    }
}

#[cfg(test)]
mod csv_negotiation_tests {
    use super::ranks_csv_first as prefers_csv;

    #[test]
    fn csv_only_when_the_client_ranks_it_first() {
        assert!(prefers_csv("text/csv"));
        assert!(prefers_csv("TEXT/CSV; charset=utf-8"));
        assert!(prefers_csv("text/csv, application/json;q=0.5"));
        assert!(prefers_csv("text/csv, */*"));
        assert!(!prefers_csv(""));
        assert!(!prefers_csv("application/json"));
        assert!(!prefers_csv("*/*"));
        assert!(!prefers_csv("application/json, text/csv"));
        assert!(!prefers_csv("application/json, text/csv;q=0"));
        assert!(!prefers_csv("text/csv;q=0"));
        assert!(prefers_csv("application/json;q=0.2, text/csv;q=0.9"));
    }
}
