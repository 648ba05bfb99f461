//! The OpenAPI document as served and committed: what the routes' own
//! annotations cannot say (shared responses and headers, configured
//! bounds), and the finishing that makes the document one generators and
//! validators accept as it is (optional bodies as plain references, list
//! items as references to their schema, headers never null).

use serde_json::{Map, Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, RefOr, ResponseBuilder};

use crate::config::Config;
use crate::http::error;
use crate::http::format;

/// The document of `document`'s routes with everything they share, as JSON.
pub fn complete(mut document: utoipa::openapi::OpenApi, config: &Config) -> Value {
    add_shared(&mut document, config);
    let mut json = match serde_json::to_value(&document) {
        Ok(json) => json,
        Err(error) => {
            tracing::error!(%error, "cannot serialise the OpenAPI document");
            return json!({});
        }
    };
    plain_optional_bodies(&mut json);
    headers_never_null(&mut json);
    page_items_by_reference(&mut json);
    document_response_headers(&mut json);
    json
}
/// Adds what every operation shares: the bearer security scheme, and the
/// problem+json responses that middleware and extractors can produce; and
/// what depends on the configuration: the bounds of amounts in requests.
fn add_shared(document: &mut utoipa::openapi::OpenApi, config: &Config) {
    let components = document.components.get_or_insert_with(Default::default);
    components.schemas.insert(
        "LoanAmountInput".to_owned(),
        format::amount_input_schema(config.loan_min_amount, config.loan_max_amount),
    );
    components.schemas.insert(
        "PaymentAmountInput".to_owned(),
        format::amount_input_schema(crate::money::Money::from_minor(1), config.loan_max_amount),
    );
    components.add_security_scheme(
        "bearerAuth",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    for path_item in document.paths.paths.values_mut() {
        let operations = [
            path_item.get.as_mut(),
            path_item.post.as_mut(),
            path_item.put.as_mut(),
            path_item.patch.as_mut(),
            path_item.delete.as_mut(),
        ];
        for operation in operations.into_iter().flatten() {
            add_problem_responses(operation);
        }
    }
}

/// The problem responses an operation can give besides its own: those of
/// the body and query parsing, the token and role checks, the rate limit
/// and the database being away.
fn add_problem_responses(operation: &mut utoipa::openapi::path::Operation) {
    use utoipa::openapi::path::ParameterIn;
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_body = operation.request_body.is_some();
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    let has_parameters_in = |place: ParameterIn| {
        parameters
            .iter()
            .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == place))
    };
    let (has_path_params, has_query_params) = (
        has_parameters_in(ParameterIn::Path),
        has_parameters_in(ParameterIn::Query),
    );
    let responses = &mut operation.responses.responses;
    let mut add = |status: &str, description: &str| {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| problem_response(description));
    };
    if has_body {
        add(
            "400",
            "Malformed JSON, a non-JSON content type or unknown fields",
        );
        add("413", "Request body larger than 1 MiB");
    }
    if has_body || has_query_params {
        add("422", "Invalid fields; `errors` names each one");
    }
    if secured {
        add("401", "Missing, invalid or expired access token");
    }
    if secured && (has_path_params || has_query_params || has_body) {
        add("403", "The caller's role does not allow this");
    }
    if has_path_params {
        add("404", "No such record, or not one the caller may see");
    }
    add("429", "Rate limited; see Retry-After");
    add("503", "Temporarily unavailable");
    add("default", "An error, as problem details");
}

/// A problem+json response described as `description`.
fn problem_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                error::PROBLEM_CONTENT_TYPE,
                Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "Problem",
                )))),
            )
            .build(),
    )
}

/// Every operation of the document, with its path and method.
fn operations(json: &mut Value) -> impl Iterator<Item = (String, String, &mut Map<String, Value>)> {
    json["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.iter_mut())
        .flat_map(|(path, item)| {
            let path = path.clone();
            item.as_object_mut()
                .into_iter()
                .flat_map(|methods| methods.iter_mut())
                .filter_map(move |(method, operation)| {
                    Some((path.clone(), method.clone(), operation.as_object_mut()?))
                })
        })
}

/// An optional body (`Option<T>` in a handler) comes out as `oneOf [T,
/// null]`, which generated clients cannot leave out: it is the plain
/// schema, with the body not required.
fn plain_optional_bodies(json: &mut Value) {
    for (_, _, operation) in operations(json) {
        let Some(body) = operation.get_mut("requestBody") else {
            continue;
        };
        let mut optional = false;
        for content in body["content"]
            .as_object_mut()
            .into_iter()
            .flat_map(|c| c.values_mut())
        {
            let schema = &mut content["schema"];
            let Some([first, second]) = schema["oneOf"].as_array().map(Vec::as_slice) else {
                continue;
            };
            let plain = match (first, second) {
                (plain, null) | (null, plain) if *null == json!({ "type": "null" }) => {
                    plain.clone()
                }
                _ => continue,
            };
            *schema = plain;
            optional = true;
        }
        if optional {
            body["required"] = json!(false);
        }
    }
}

/// A header has a value or is absent; it is never `null`.
fn headers_never_null(json: &mut Value) {
    for (_, _, operation) in operations(json) {
        for parameter in operation
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if parameter["in"] != "header" {
                continue;
            }
            let kind = &mut parameter["schema"]["type"];
            if let Some(types) = kind.as_array() {
                let named: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
                *kind = match named.as_slice() {
                    [one] => one.clone(),
                    _ => Value::Array(named),
                };
            }
        }
    }
}

/// A page of `T` (`Page_T`) lists items of the shared schema `T`, by
/// reference, so that generated clients have one `T`, not a copy per list.
fn page_items_by_reference(json: &mut Value) {
    let Some(schemas) = json["components"]["schemas"].as_object_mut() else {
        return;
    };
    let pages: Vec<(String, String)> = schemas
        .keys()
        .filter_map(|name| {
            let item = name.strip_prefix("Page_")?;
            schemas
                .contains_key(item)
                .then(|| (name.clone(), item.to_owned()))
        })
        .collect();
    for (page, item) in pages {
        schemas[&page]["properties"]["items"]["items"] =
            json!({ "$ref": format!("#/components/schemas/{item}") });
    }
}

/// The headers responses carry: every one its request id; every one of a
/// rate-limited route the `RateLimit-*` headers; a `429` or `503` its
/// `Retry-After`; a payment or settlement its `Idempotent-Replayed` when
/// it repeats an earlier answer.
fn document_response_headers(json: &mut Value) {
    json["components"]["headers"] = json!({
        "X-Request-Id": {
            "description": "The request's id: the client's own `X-Request-Id` when it is 1–256 visible ASCII characters, else one the service made (a UUID). Logs and audit entries carry it.",
            "required": true,
            "schema": { "type": "string" },
        },
        "RateLimit-Limit": {
            "description": "Requests allowed per window (a minute) to this client.",
            "schema": { "type": "integer", "minimum": 0 },
        },
        "RateLimit-Remaining": {
            "description": "Requests left in the current window.",
            "schema": { "type": "integer", "minimum": 0 },
        },
        "RateLimit-Reset": {
            "description": "Seconds until the window ends.",
            "schema": { "type": "integer", "minimum": 0 },
        },
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "schema": { "type": "integer", "minimum": 0 },
        },
        "Idempotent-Replayed": {
            "description": "`true` when this answer repeats the one given to an earlier request with the same `Idempotency-Key` (nothing was recorded again).",
            "schema": { "type": "string", "enum": ["true"] },
        },
    });
    let header = |name: &str| json!({ "$ref": format!("#/components/headers/{name}") });
    for (path, method, operation) in operations(json) {
        let rate_limited = !path.starts_with("/health/");
        let replayable = method == "post"
            && operation
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|parameters| {
                    parameters.iter().any(|p| p["name"] == "Idempotency-Key")
                });
        let Some(responses) = operation
            .get_mut("responses")
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        for (status, response) in responses.iter_mut() {
            let headers = &mut response["headers"];
            headers["X-Request-Id"] = header("X-Request-Id");
            if rate_limited {
                for name in ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"] {
                    headers[name] = header(name);
                }
            }
            if status == "429" || status == "503" {
                headers["Retry-After"] = header("Retry-After");
            }
            if replayable && status == "201" {
                headers["Idempotent-Replayed"] = header("Idempotent-Replayed");
            }
        }
    }
}
