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

/// A decimal figure in a request: a string or a JSON number.
impl utoipa::PartialSchema for crate::http::json::DecimalText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^-?[0-9]+(\.[0-9]+)?$")),
            )
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .description(Some(
                "A decimal number, as a string (\"1250.50\") or a JSON number (1250.50).",
            ))
            .into()
    }
}

impl utoipa::ToSchema for crate::http::json::DecimalText {}
