//! Query strings, parsed by the types that describe them.
//!
//! Each list or filter declares its parameters once, as a struct deriving
//! both `serde::Deserialize` (how a query string becomes it) and
//! `utoipa::IntoParams` (how the OpenAPI document describes it). The
//! rules every query follows are here:
//!
//! - a parameter given more than once is refused (`422` naming it): every
//!   parameter this service reads is single-valued, and silently keeping
//!   one of two values would answer a question the client did not ask;
//! - every value the type cannot take is refused, naming its parameter —
//!   all of them at once, not only the first;
//! - parameters no type knows are ignored, as HTTP caches and proxies add
//!   their own.

use std::fmt::Display;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use utoipa::IntoParams;
use utoipa::openapi::path::ParameterIn;

use super::error::AppError;
use super::json::Validator;

/// The query string as its name–value pairs, in order.
#[derive(Debug, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub fn parse(query: Option<&str>) -> QueryParams {
        let pairs = form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned();
        QueryParams(pairs.collect())
    }

    /// Whether the parameter was sent at all, well-formed or not.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(given, _)| given == name)
    }

    /// The parameters `T` declares, as `T`. A repeated parameter, and a
    /// value `T` cannot take, is noted in `validator` naming the parameter
    /// and left out (so `T` holds `None` for it).
    pub fn parse_into<T>(&self, validator: &mut Validator) -> T
    where
        T: DeserializeOwned + IntoParams + Default,
    {
        let declared: Vec<String> = T::into_params(|| Some(ParameterIn::Query))
            .into_iter()
            .map(|parameter| parameter.name)
            .collect();
        let mut given: Vec<(String, String)> = self
            .0
            .iter()
            .filter(|(name, _)| declared.contains(name))
            .cloned()
            .collect();
        for name in &declared {
            if given.iter().filter(|(given, _)| given == name).count() > 1 {
                validator.error(name, "must be given once");
                given.retain(|(given, _)| given != name);
            }
        }
        // Each refusal names one parameter; without it the rest is tried
        // again, so that every bad value is reported.
        loop {
            match deserialize::<T>(&given) {
                Ok(parsed) => return parsed,
                Err(error) => {
                    let name = error.path().to_string();
                    if !given.iter().any(|(given, _)| *given == name) {
                        validator.error("query", error.inner());
                        return T::default();
                    }
                    validator.error(&name, error.inner());
                    given.retain(|(given, _)| *given != name);
                }
            }
        }
    }
}

fn deserialize<T: DeserializeOwned>(
    pairs: &[(String, String)],
) -> Result<T, serde_path_to_error::Error<serde_urlencoded::de::Error>> {
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let deserializer =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(encoded.as_bytes()));
    serde_path_to_error::deserialize(deserializer)
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(QueryParams::parse(parts.uri.query()))
    }
}

/// Declares a query value type read from its text by `parse`, refused with
/// the message it gives.
macro_rules! query_value {
    ($(#[$meta:meta])* $name:ident($inner:ty) = $parse:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(pub $inner);

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(text: String) -> Result<Self, String> {
                let parse: fn(&str) -> Result<$inner, String> = $parse;
                parse(&text).map($name)
            }
        }
    };
}

fn refused(message: impl Display) -> String {
    message.to_string()
}

query_value! {
    /// A calendar date, `YYYY-MM-DD` and nothing else.
    CalendarDate(NaiveDate) = |text| crate::calendar::parse_date(text).map_err(refused)
}

query_value! {
    /// An RFC 3339 timestamp, such as `2026-11-24T15:04:05Z`.
    Timestamp(DateTime<Utc>) = |text| {
        DateTime::parse_from_rfc3339(text)
            .map(|moment| moment.with_timezone(&Utc))
            .map_err(|_| "must be an RFC 3339 timestamp such as 2026-11-24T15:04:05Z".to_owned())
    }
}

query_value! {
    /// `true` or `false`.
    Flag(bool) = |text| match text {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("must be true or false".to_owned()),
    }
}

query_value! {
    /// A UUID.
    Id(uuid::Uuid) = |text| uuid::Uuid::parse_str(text).map_err(|_| "must be a UUID".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize, IntoParams)]
    #[into_params(parameter_in = Query)]
    #[serde(rename_all = "camelCase")]
    struct Filters {
        #[param(value_type = Option<chrono::NaiveDate>)]
        as_of: Option<CalendarDate>,
        #[param(value_type = Option<bool>)]
        unread: Option<Flag>,
        #[param(value_type = Option<uuid::Uuid>)]
        owner: Option<Id>,
    }

    fn parse(query: &str) -> (Filters, Vec<String>) {
        let mut validator = Validator::new();
        let parsed = QueryParams::parse(Some(query)).parse_into::<Filters>(&mut validator);
        (parsed, validator.fields())
    }

    #[test]
    fn every_bad_value_is_named_and_the_good_ones_kept() {
        let (parsed, bad) = parse("asOf=2026-2-1&unread=true&owner=nope&other=1&other=2");
        assert_eq!(bad, vec!["asOf", "owner"]);
        assert_eq!(parsed.unread, Some(Flag(true)));
        assert_eq!(parsed.as_of, None);
        assert_eq!(parsed.owner, None);
        let (parsed, bad) = parse("asOf=2026-02-01&owner=0192b3a4-0000-7000-8000-000000000001");
        assert!(bad.is_empty());
        assert!(parsed.owner.is_some());
        assert_eq!(
            parsed.as_of.map(|date| date.0),
            NaiveDate::from_ymd_opt(2026, 2, 1)
        );
    }

    #[test]
    fn a_repeated_parameter_is_refused_not_half_read() {
        let (parsed, bad) = parse("unread=true&unread=false&asOf=2026-02-01");
        assert_eq!(bad, vec!["unread"]);
        assert_eq!(parsed.unread, None);
        assert!(parsed.as_of.is_some());
    }
}
