//! Wire formats shared by every view.

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

/// `Money` on the wire: a string with exactly two decimals.
impl utoipa::PartialSchema for crate::money::Money {
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

impl utoipa::ToSchema for crate::money::Money {}

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
/// `pattern` or a JSON number within `minimum..=maximum` in steps of
/// `step`.
fn decimal_input_schema(
    description: &str,
    pattern: &str,
    minimum: f64,
    maximum: f64,
    step: f64,
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
                .maximum(Some(maximum))
                .multiple_of(Some(step)),
        )
        .description(Some(description))
        .into()
}

/// A loan amount in a request: 100.00 to 1 000 000.00 (the defaults of
/// `LOAN_MIN_AMOUNT` and `LOAN_MAX_AMOUNT`), at most two decimals.
pub struct LoanAmountInput;

impl utoipa::PartialSchema for LoanAmountInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        decimal_input_schema(
            "An amount from 100.00 to 1000000.00 with at most two decimals, as a string (\"1250.50\") or a JSON number (1250.50).",
            r"^([1-9][0-9]{2,5}(\.[0-9]{1,2})?|1000000(\.0{1,2})?)$",
            100.0,
            1_000_000.0,
            0.01,
        )
    }
}

impl utoipa::ToSchema for LoanAmountInput {}

/// A payment amount in a request: positive, at most two decimals, at most
/// 1 000 000.00 (and at most what the loan still owes).
pub struct PaymentAmountInput;

impl utoipa::PartialSchema for PaymentAmountInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        decimal_input_schema(
            "A positive amount of at most 1000000.00 with at most two decimals, as a string or a JSON number; never more than the loan still owes.",
            r"^(0\.(0[1-9]|[1-9][0-9]?)|[1-9][0-9]{0,5}(\.[0-9]{1,2})?|1000000(\.0{1,2})?)$",
            0.01,
            1_000_000.0,
            0.01,
        )
    }
}

impl utoipa::ToSchema for PaymentAmountInput {}

/// An annual interest rate in a request: 0 to 100 percent, at most four
/// decimals.
pub struct RateInput;

impl utoipa::PartialSchema for RateInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        decimal_input_schema(
            "A percentage from 0 to 100 with at most four decimals, as a string (\"9.5\") or a JSON number.",
            r"^([0-9]|[1-9][0-9])(\.[0-9]{1,4})?$|^100(\.0{1,4})?$",
            0.0,
            100.0,
            0.0001,
        )
    }
}

impl utoipa::ToSchema for RateInput {}
