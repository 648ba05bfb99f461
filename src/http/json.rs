//! Reading request bodies.
//!
//! The contract separates three failures: a body that is not JSON (or not
//! sent as JSON) or that carries fields we do not know is a `400`; JSON
//! whose fields are missing, of the wrong type or invalid is a `422` naming
//! every such field. To report all bad fields at once, request structs
//! declare their fields as [`Field<T>`], which never fails to deserialise:
//! it records what it found, and a [`Validator`] turns those records into
//! domain values or field errors.

use std::fmt::Display;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::error::{AppError, FieldError};

/// A JSON request body of type `T` (a struct with `deny_unknown_fields`
/// whose fields are [`Field`]s).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (body, _) = read_json(request, state).await?;
        Ok(JsonBody(body))
    }
}

async fn read_json<S: Send + Sync, T: DeserializeOwned>(
    request: Request,
    state: &S,
) -> Result<(T, serde_json::Value), AppError> {
    if !has_json_content_type(&request) {
        return Err(not_json());
    }
    let bytes = read_body(request, state).await?;
    parse_json(&bytes)
}

/// A [`JsonBody`] together with the JSON as sent: for requests that may
/// wait for a second person, who sees (and runs) what was asked.
#[derive(Debug)]
pub struct JsonBodyAsSent<T>(pub T, pub serde_json::Value);

impl<S, T> FromRequest<S> for JsonBodyAsSent<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (body, sent) = read_json(request, state).await?;
        Ok(JsonBodyAsSent(body, sent))
    }
}

/// Like [`JsonBody`], but an empty body (with or without a content type)
/// is `None`: for endpoints whose whole body is optional. A body that is
/// there must be an object, as the document says (`null` too is a `400`).
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<S, T> FromRequest<S> for OptionalJsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = read_optional_json(request, state).await?;
        Ok(OptionalJsonBody(body.map(|(body, _)| body)))
    }
}

async fn read_optional_json<S: Send + Sync, T: DeserializeOwned>(
    request: Request,
    state: &S,
) -> Result<Option<(T, serde_json::Value)>, AppError> {
    let declared_json = has_json_content_type(&request);
    let bytes = read_body(request, state).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !declared_json {
        return Err(not_json());
    }
    parse_json(&bytes).map(Some)
}

/// An [`OptionalJsonBody`] together with the JSON as sent (`{}` when no
/// body was sent).
#[derive(Debug)]
pub struct OptionalJsonBodyAsSent<T>(pub Option<T>, pub serde_json::Value);

impl<S, T> FromRequest<S> for OptionalJsonBodyAsSent<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(match read_optional_json(request, state).await? {
            Some((body, sent)) => OptionalJsonBodyAsSent(Some(body), sent),
            None => OptionalJsonBodyAsSent(None, serde_json::json!({})),
        })
    }
}

fn not_json() -> AppError {
    AppError::BadRequest(
        "The request body must be JSON, sent with Content-Type: application/json.".to_owned(),
    )
}

fn has_json_content_type(request: &Request) -> bool {
    let Some(content_type) = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// How long a request body may take to arrive, set per request by
/// [`super::middleware::guard_request_body`] from `BODY_READ_TIMEOUT_SECS`.
#[derive(Debug, Clone, Copy)]
pub struct BodyReadTimeout(pub std::time::Duration);

/// Without the middleware (a router built without it), this long.
const DEFAULT_BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, AppError> {
    let limit = request
        .extensions()
        .get::<BodyReadTimeout>()
        .map_or(DEFAULT_BODY_READ_TIMEOUT, |timeout| timeout.0);
    // A client that declares a body and stops sending it is told so (408)
    // long before the request timeout would answer 503.
    let Ok(read) = tokio::time::timeout(limit, Bytes::from_request(request, state)).await else {
        return Err(AppError::RequestTimeout);
    };
    read.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            AppError::PayloadTooLarge
        } else {
            AppError::BadRequest("The request body could not be read.".to_owned())
        }
    })
}

/// The body as `T`, and as the JSON object it is.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, serde_json::Value), AppError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|error| {
        numbers_out_of_range(bytes, &error).unwrap_or_else(|| {
            AppError::BadRequest(format!("Malformed JSON: {}.", without_position(&error)))
        })
    })?;
    // serde would also read a struct from a JSON array; we want objects only.
    let Some(object) = value.as_object() else {
        return Err(AppError::BadRequest(
            "The request body must be a JSON object.".to_owned(),
        ));
    };
    // No text we store may hold a NUL character (PostgreSQL refuses it).
    let with_nul: Vec<&String> = object
        .iter()
        .filter(|(_, value)| contains_nul(value))
        .map(|(field, _)| field)
        .collect();
    if !with_nul.is_empty() {
        return Err(AppError::Validation(
            with_nul
                .into_iter()
                .map(|field| FieldError {
                    field: field.clone(),
                    message: "must not contain NUL characters".to_owned(),
                })
                .collect(),
        ));
    }
    let body = serde_json::from_slice(bytes).map_err(|error| {
        let detail = match error.classify() {
            serde_json::error::Category::Data => {
                format!("Invalid request body: {}.", without_position(&error))
            }
            _ => format!("Malformed JSON: {}.", without_position(&error)),
        };
        AppError::BadRequest(detail)
    })?;
    Ok((body, value))
}

/// A number beyond what a float holds (`1e400`) is well-formed JSON with
/// an invalid value: a `422` naming each field that holds one, like any
/// other bad amount. `None` when `error` is about something else.
fn numbers_out_of_range(bytes: &[u8], error: &serde_json::Error) -> Option<AppError> {
    if !error.to_string().starts_with("number out of range") {
        return None;
    }
    // Raw values are checked for form, not read as numbers.
    let fields: std::collections::BTreeMap<String, Box<serde_json::value::RawValue>> =
        serde_json::from_slice(bytes).ok()?;
    let invalid: Vec<FieldError> = fields
        .into_iter()
        .filter(|(_, raw)| serde_json::from_str::<serde_json::Value>(raw.get()).is_err())
        .map(|(field, _)| FieldError {
            field,
            message: "is a number out of range".to_owned(),
        })
        .collect();
    (!invalid.is_empty()).then_some(AppError::Validation(invalid))
}

fn contains_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(text) => text.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(contains_nul),
        serde_json::Value::Object(fields) => fields
            .iter()
            .any(|(key, value)| key.contains('\0') || contains_nul(value)),
        _ => false,
    }
}

/// serde_json appends " at line 1 column 5"; clients need only the reason.
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.find(" at line ") {
        Some(index) => text[..index].to_owned(),
        None => text,
    }
}

/// A body of one `reason`: why staff reject a loan, reverse a payment or
/// write a loan off, or why a decision is rejected.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// 1–500 characters, not all blank; stored trimmed.
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 500, pattern = r"\S")]
    reason: Field<String>,
}

impl ReasonBody {
    /// The reason, or a `422` naming `reason`.
    pub fn parse(self) -> Result<crate::loans::domain::Reason, AppError> {
        let mut validator = Validator::new();
        let reason = validator.required("reason", self.reason, |text: String| {
            crate::loans::domain::Reason::parse(&text)
        });
        validator.finish(|| reason)
    }
}

/// What a request body held for one field.
#[derive(Debug, Default)]
pub enum Field<T> {
    /// The field was absent.
    #[default]
    Missing,
    /// The field was `null`.
    Null,
    /// The field held JSON that is not a `T`; the message says why.
    Invalid(String),
    Value(T),
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        if raw.get() == "null" {
            return Ok(Field::Null);
        }
        Ok(match serde_json::from_str::<T>(raw.get()) {
            Ok(value) => Field::Value(value),
            Err(error) => Field::Invalid(without_position(&error)),
        })
    }
}

/// Collects field errors while a request is turned into domain values.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn error(&mut self, field: &str, message: impl Display) {
        self.errors.push(FieldError {
            field: field.to_owned(),
            message: message.to_string(),
        });
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// The fields refused so far, in order.
    pub fn fields(&self) -> Vec<String> {
        self.errors
            .iter()
            .map(|error| error.field.clone())
            .collect()
    }

    /// A field that must be present and not null, parsed by `parse`.
    pub fn required<T, U, E: Display>(
        &mut self,
        name: &str,
        field: Field<T>,
        parse: impl FnOnce(T) -> Result<U, E>,
    ) -> Option<U> {
        match field {
            Field::Missing | Field::Null => {
                self.error(name, "is required");
                None
            }
            Field::Invalid(message) => {
                self.error(name, message);
                None
            }
            Field::Value(value) => self.check(name, parse(value)),
        }
    }

    /// A field that may be absent or null (`Some(None)`); `None` means it
    /// was present but invalid.
    pub fn optional<T, U, E: Display>(
        &mut self,
        name: &str,
        field: Field<T>,
        parse: impl FnOnce(T) -> Result<U, E>,
    ) -> Option<Option<U>> {
        match field {
            Field::Missing | Field::Null => Some(None),
            Field::Invalid(message) => {
                self.error(name, message);
                None
            }
            Field::Value(value) => self.check(name, parse(value)).map(Some),
        }
    }

    /// Records the error of a failed parse under `name`.
    pub fn check<U, E: Display>(&mut self, name: &str, result: Result<U, E>) -> Option<U> {
        match result {
            Ok(value) => Some(value),
            Err(message) => {
                self.error(name, message);
                None
            }
        }
    }

    /// Fails with every collected error, or builds the parsed request. The
    /// builder returns `None` only if a field it needs failed, which the
    /// collected errors already describe.
    pub fn finish<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, AppError> {
        if !self.errors.is_empty() {
            return Err(AppError::Validation(self.errors));
        }
        build().ok_or_else(|| AppError::Validation(Vec::new()))
    }
}

/// Parse functions for fields that need no conversion.
pub fn accept<T>(value: T) -> Result<T, std::convert::Infallible> {
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[serde(default)]
        name: Field<String>,
        #[serde(default)]
        count: Field<u32>,
    }

    #[test]
    fn fields_record_what_they_found() {
        let sample: Sample = serde_json::from_str(r#"{"name": 5}"#).expect("parses");
        assert!(
            matches!(sample.name, Field::Invalid(ref m) if m.starts_with("invalid type: integer `5`"))
        );
        assert!(matches!(sample.count, Field::Missing));
        let sample: Sample = serde_json::from_str(r#"{"name": null, "count": 3}"#).expect("parses");
        assert!(matches!(sample.name, Field::Null));
        assert!(matches!(sample.count, Field::Value(3)));
    }

    #[test]
    fn unknown_fields_and_bad_syntax_are_bad_requests() {
        for body in [r#"{"name": "a", "role": "ADMIN"}"#, "{", "[1]", "nonsense"] {
            let result = parse_json::<Sample>(body.as_bytes());
            assert!(matches!(result, Err(AppError::BadRequest(_))), "{body}");
        }
    }

    #[test]
    fn the_validator_collects_every_error() {
        let mut validator = Validator::new();
        let name = validator.required("name", Field::<String>::Missing, accept);
        let count = validator.required("count", Field::Value(0u32), |n| {
            if n > 0 {
                Ok(n)
            } else {
                Err("must be positive")
            }
        });
        let result = validator.finish(|| Some((name?, count?)));
        match result {
            Err(AppError::Validation(errors)) => {
                let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
                assert_eq!(fields, ["name", "count"]);
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }
}

/// A decimal figure as the client wrote it: the text of a JSON string, or
/// the literal digits of a JSON number (never converted through a float,
/// so `1250.10` arrives as exactly `1250.10`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecimalText(pub String);

impl<'de> Deserialize<'de> for DecimalText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        if text.starts_with('"') {
            let inner: String = serde_json::from_str(text).map_err(serde::de::Error::custom)?;
            Ok(DecimalText(inner))
        } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            Ok(DecimalText(text.to_owned()))
        } else {
            Err(serde::de::Error::custom(
                "must be a decimal number or a string holding one",
            ))
        }
    }
}

/// A whole number as JSON writes it: `12`, or `12.0` (which JSON Schema
/// also calls an integer). Anything with a fraction is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WholeNumber(pub i64);

impl<'de> Deserialize<'de> for WholeNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let number = serde_json::Number::deserialize(deserializer)?;
        if let Some(whole) = number.as_i64() {
            return Ok(WholeNumber(whole));
        }
        match number.as_f64() {
            // Month counts and the like, never money: a float is exact here.
            Some(value) if value.fract() == 0.0 && value.abs() < 1e15 => {
                Ok(WholeNumber(value as i64))
            }
            _ => Err(serde::de::Error::custom("must be a whole number")),
        }
    }
}
