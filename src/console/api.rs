//! The console is a client of the HTTP API, in process: every page reads
//! and every form writes through the very routes, extractors, validations
//! and services that answer API clients, so no rule has a second copy
//! here. A call is dispatched to the API router directly, as the staff
//! member signed in (no token needed: the actor rides in the request's
//! extensions, which no client can set), with the client's address and
//! user agent, so rate limits, audit entries and login attempts count
//! exactly as they do for the API.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

use crate::auth::actor::Actor;

/// The largest answer the console reads from the API (a journal or CSV is
/// streamed to the browser instead).
const LARGEST_ANSWER: usize = 16 * 1024 * 1024;

/// The API router, ready to answer the console's calls.
#[derive(Clone)]
pub struct Api(pub Router);

/// Who a call is made for: the signed-in staff member (none while signing
/// in), and what identifies their client.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Option<Actor>,
    connect: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
}

/// The client headers a call carries on: what audit entries record and
/// what tells a trusted proxy's client address.
const CARRIED_HEADERS: [&str; 3] = ["user-agent", "x-forwarded-for", "x-request-id"];

impl Caller {
    pub fn of(parts: &Parts, actor: Option<Actor>) -> Caller {
        let mut headers = HeaderMap::new();
        for name in CARRIED_HEADERS {
            for value in parts.headers.get_all(name) {
                headers.append(name, value.clone());
            }
        }
        Caller {
            actor,
            connect: parts.extensions.get::<ConnectInfo<SocketAddr>>().copied(),
            headers,
        }
    }
}

/// What the API answered.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: axum::body::Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The answer as a refusal, when it is one.
    pub fn refusal(&self) -> Option<Refusal> {
        (!self.status.is_success()).then(|| self.as_refusal())
    }

    /// The answer read as a refusal, whatever its status.
    pub fn as_refusal(&self) -> Refusal {
        Refusal::from_problem(self.status, &self.json())
    }

    /// Reads the whole of an answer.
    pub async fn read(response: axum::response::Response) -> Reply {
        let (parts, body) = response.into_parts();
        match axum::body::to_bytes(body, LARGEST_ANSWER).await {
            Ok(body) => Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            },
            Err(error) => {
                tracing::error!(%error, "the console could not read an API answer");
                Reply {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    headers: HeaderMap::new(),
                    body: axum::body::Bytes::new(),
                }
            }
        }
    }
}

/// A request the API refused, as its problem details tell it: a message
/// for the person, and one per field it names.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
    pub fields: Vec<(String, String)>,
}

impl Refusal {
    fn from_problem(status: StatusCode, problem: &Value) -> Refusal {
        let text = |name: &str| problem.get(name).and_then(Value::as_str);
        let message = text("detail")
            .or_else(|| text("title"))
            .unwrap_or("The service refused the request.")
            .to_owned();
        let fields = problem
            .get("errors")
            .and_then(Value::as_array)
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|error| {
                        Some((
                            error.get("field")?.as_str()?.to_owned(),
                            error.get("message")?.as_str()?.to_owned(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Refusal {
            status,
            message,
            fields,
        }
    }

    /// The message about `field`, if the refusal names it.
    pub fn about(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, message)| message.as_str())
    }
}

/// One call to the API.
pub struct Call {
    method: Method,
    uri: String,
    body: Option<Value>,
    headers: Vec<(header::HeaderName, String)>,
}

impl Call {
    pub fn get(uri: impl Into<String>) -> Call {
        Call {
            method: Method::GET,
            uri: uri.into(),
            body: None,
            headers: Vec::new(),
        }
    }

    pub fn send(method: Method, uri: impl Into<String>, body: Option<Value>) -> Call {
        Call {
            method,
            uri: uri.into(),
            body,
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: header::HeaderName, value: impl Into<String>) -> Call {
        self.headers.push((name, value.into()));
        self
    }
}

impl Api {
    /// Makes the call and reads the whole answer.
    pub async fn call(&self, caller: &Caller, call: Call) -> Reply {
        Reply::read(self.dispatch(caller, call).await).await
    }

    /// Makes the call and hands back the answer as it comes (a CSV
    /// download is streamed through).
    pub async fn dispatch(&self, caller: &Caller, call: Call) -> axum::response::Response {
        let mut request = Request::new(match &call.body {
            Some(body) => Body::from(body.to_string()),
            None => Body::empty(),
        });
        *request.method_mut() = call.method;
        match call.uri.parse() {
            Ok(uri) => *request.uri_mut() = uri,
            Err(_) => {
                return axum::response::IntoResponse::into_response(StatusCode::NOT_FOUND);
            }
        }
        let headers = request.headers_mut();
        headers.extend(caller.headers.clone());
        if call.body.is_some() {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        for (name, value) in call.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        if let Some(connect) = caller.connect {
            request.extensions_mut().insert(connect);
        }
        if let Some(actor) = caller.actor {
            request.extensions_mut().insert(actor);
        }
        match self.0.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}
