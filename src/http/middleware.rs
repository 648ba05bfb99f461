//! Middleware every response passes through.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::error::{AppError, PROBLEM_CONTENT_TYPE, problem_for_status};

pub const REQUEST_ID: &str = "x-request-id";

/// Gives every request an id (the client's `X-Request-Id` when it is a
/// visible-ASCII token of at most 256 characters, else a new UUID) and
/// sends it back on the response.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = assign_request_id(&mut request);
    let mut response = next.run(request).await;
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

/// Sets the request's `X-Request-Id` to a sane value and returns it.
fn assign_request_id(request: &mut Request) -> HeaderValue {
    let offered = request
        .headers()
        .get(REQUEST_ID)
        .filter(|value| value.to_str().is_ok_and(is_sane_request_id))
        .cloned();
    let id = offered.unwrap_or_else(|| {
        HeaderValue::from_str(&Uuid::now_v7().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
    });
    request.headers_mut().insert(REQUEST_ID, id.clone());
    id
}

/// Any visible ASCII token up to 256 characters is echoed back.
fn is_sane_request_id(text: &str) -> bool {
    (1..=256).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic())
}

/// The route template of a request (`/loans/{id}`), for logs and metrics.
pub fn route_of(request: &Request) -> String {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned())
}

/// Error responses not made by our handlers (unknown route, wrong method,
/// body-limit, timeout, panic) get a problem+json body like all others.
pub async fn problem_json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_problem(response.headers()) {
        return response;
    }
    let (parts, _) = response.into_parts();
    let mut replacement = problem_for_status(status);
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(value) = parts.headers.get(&name) {
            replacement.headers_mut().insert(name, value.clone());
        }
    }
    replacement
}

/// Bodies our handlers chose to send (problem details, a JSON report such
/// as the readiness probe's, or a console page telling a person what went
/// wrong) are kept as they are.
fn is_problem(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value.starts_with(PROBLEM_CONTENT_TYPE)
                || value.starts_with("application/json")
                || value.starts_with("text/html")
        })
}

/// JSON responses may not be framed, sniffed, or run anything; the docs
/// page may run its own (vendored) script and styles and nothing else.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

/// The console's pages load their one stylesheet and post forms to the
/// service, and nothing else: no script at all, not even the service's own.
const CONSOLE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
    form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Sets the security headers; `hsts` is the `Strict-Transport-Security`
/// value when configured (the service must then be reached over HTTPS).
pub async fn security_headers(
    axum::extract::State(hsts): axum::extract::State<Option<HeaderValue>>,
    request: Request,
    next: Next,
) -> Response<Body> {
    let path = request.uri().path();
    let is_docs = path.starts_with("/docs");
    let csp = if is_docs {
        DOCS_CSP
    } else if path == "/console" || path.starts_with("/console/") {
        CONSOLE_CSP
    } else {
        API_CSP
    };
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if let Some(hsts) = hsts {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    if !is_docs {
        // Responses carry tokens and personal data: never cache them.
        headers
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
    }
    response
}

/// Admission, in one middleware (each layer costs an allocation per
/// request): the request body guard ([`guard_body`]), then the rate limit
/// ([`rate_limit`]).
pub async fn admit(
    axum::extract::State(state): axum::extract::State<crate::app::AppState>,
    request: Request,
    next: Next,
) -> Response {
    match guard_body(request, state.config.body_read_timeout) {
        Ok((request, read_to_end)) => {
            close_if_unread(rate_limit(&state, request, next).await, read_to_end)
        }
        Err(refusal) => {
            // The refused body is still on its way: this connection ends.
            let mut response = refusal.into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

/// `RATE_LIMIT_PER_MINUTE` per client: the user when the request carries a
/// valid access token, else the client IP. Health, metrics and docs are
/// exempt. Every limited response carries `RateLimit-*` headers.
async fn rate_limit(state: &crate::app::AppState, mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let exempt = path.starts_with("/health/")
        || path == "/metrics"
        || path.starts_with("/docs")
        || path == "/openapi.json";
    if exempt {
        return next.run(request).await;
    }
    let claims = crate::http::extract::bearer_token_of(request.headers())
        .and_then(|token| state.tokens.verify_access(token, state.now()).ok());
    let user_id = claims.as_ref().map(|claims| claims.sub);
    let user = user_id.map(|id| format!("user:{id}"));
    if let Some(claims) = claims {
        // Verified once here; the actor extractor and later middleware
        // take it from the request instead of checking the signature again.
        request.extensions_mut().insert(claims);
    }
    let key = user.unwrap_or_else(|| {
        let ip = crate::http::client_address::client_ip_of(
            request.extensions(),
            request.headers(),
            &state.config.trusted_proxies,
        );
        format!(
            "ip:{}",
            ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
        )
    });
    let decision = state.rate_limiter.check(&key).await;
    let mut response = if decision.allowed {
        next.run(request).await
    } else {
        axum::response::IntoResponse::into_response(super::error::AppError::RateLimited {
            retry_after_secs: decision.reset_after_secs,
            limit: decision.limit,
        })
    };
    if let Some(id) = user_id {
        response.extensions_mut().insert(RequestUser(id));
    }
    let headers = response.headers_mut();
    for (name, value) in [
        ("ratelimit-limit", decision.limit.to_string()),
        ("ratelimit-remaining", decision.remaining.to_string()),
        ("ratelimit-reset", decision.reset_after_secs.to_string()),
    ] {
        // A stricter limit (login) may have set them already.
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.entry(name).or_insert(value);
        }
    }
    response
}

/// The user a request was made by (its valid access token's subject),
/// left on the response for the access log.
#[derive(Debug, Clone, Copy)]
pub struct RequestUser(pub Uuid);

/// The `tracing` target of the access log, so that it can be filtered on
/// its own.
pub const ACCESS_LOG_TARGET: &str = "loan_tracker::access";

/// Reads slower than this are logged like writes and failures.
const SLOW_REQUEST: std::time::Duration = std::time::Duration::from_millis(500);

/// Observes every request: gives it an id (as [`request_id`] does), counts
/// it and its latency by method, route template and status, and writes one
/// access-log line when it finishes.
///
/// Every write, failure and slow read is logged at `info`; fast successful
/// reads, which the metrics already count, at `debug`
/// (`RUST_LOG=info,loan_tracker::access=debug` shows them): formatting a
/// line per read cost about a fifth of a cached read's time, measured.
///
/// Lines logged while handling the request carry a `request` span with its
/// id. The access line itself is logged outside that span with every field
/// spelled out, because formatting a span into a JSON line costs more than
/// the rest of a cached read.
pub async fn observe(mut request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let id = assign_request_id(&mut request);
    let request_id = id.to_str().unwrap_or("").to_owned();
    let method = request.method().clone();
    let route = route_of(&request);
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut response = tracing::Instrument::instrument(next.run(request), span).await;
    response.headers_mut().insert(REQUEST_ID, id);
    let latency = started.elapsed();
    let status = response.status();
    crate::metrics::record_request(&method, &route, status.as_u16(), latency.as_secs_f64());
    let user_id = response
        .extensions()
        .get::<RequestUser>()
        .map(|RequestUser(id)| tracing::field::display(*id));
    let routine = method.is_safe() && status.is_success() && latency < SLOW_REQUEST;
    macro_rules! access_line {
        ($level:expr) => {
            tracing::event!(
                target: ACCESS_LOG_TARGET,
                $level,
                method = %method,
                route = %route,
                status = status.as_u16(),
                latency_ms = latency.as_secs_f64() * 1000.0,
                request_id = %request_id,
                user_id,
                "request finished"
            )
        };
    }
    if routine {
        access_line!(tracing::Level::DEBUG);
    } else {
        access_line!(tracing::Level::INFO);
    }
    response
}

/// With a read replica, notes every successful write by a signed-in user,
/// so that their lists read the primary for a while (see
/// [`crate::read_routing`]).
pub async fn remember_writes(
    axum::extract::State(state): axum::extract::State<crate::app::AppState>,
    request: Request,
    next: Next,
) -> Response {
    let reads_only = matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    let writer = if reads_only || state.config.database_read_url.is_none() {
        None
    } else {
        crate::http::extract::verified_claims(request.extensions(), request.headers(), &state)
            .map(|claims| claims.sub)
            // The console's calls carry their actor instead of a token.
            .or_else(|| {
                request
                    .extensions()
                    .get::<crate::auth::actor::Actor>()
                    .map(|actor| actor.id)
            })
    };
    let response = next.run(request).await;
    if let Some(user) = writer
        && response.status().is_success()
    {
        state.recent_writers.mark(user, state.now()).await;
    }
    response
}

/// Guards request bodies before and after the application sees them:
///
/// - a declared `Content-Length` over the body limit is answered `413` at
///   once, without waiting for a body that will be refused anyway;
/// - the request carries the body-read timeout for the JSON extractors
///   (a body that stops arriving is a `408`);
/// - a response sent before the request body was read to its end (a `401`
///   or `404` for a request whose body is still on the wire) says
///   `Connection: close` (see [`close_if_unread`]), so the client does not
///   send its next request on a connection whose unread bytes would be
///   taken for it.
///
/// Returns the request to pass on and, when it has a body, the flag that
/// tells whether it was read to its end; or the `413` to send.
fn guard_body(
    request: Request,
    body_read_timeout: std::time::Duration,
) -> Result<(Request, Option<Arc<AtomicBool>>), AppError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > super::BODY_LIMIT_BYTES as u64) {
        return Err(AppError::PayloadTooLarge);
    }
    let has_body = declared.is_some_and(|length| length > 0)
        || request.headers().contains_key(header::TRANSFER_ENCODING);
    if !has_body {
        // Nothing to time or watch (most requests): no allocation either.
        return Ok((request, None));
    }
    let (mut parts, body) = request.into_parts();
    parts
        .extensions
        .insert(super::json::BodyReadTimeout(body_read_timeout));
    let read_to_end = Arc::new(AtomicBool::new(false));
    let body = Body::new(WatchedBody {
        inner: body,
        read_to_end: Arc::clone(&read_to_end),
    });
    Ok((Request::from_parts(parts, body), Some(read_to_end)))
}

/// Announces `Connection: close` when the request body was not read to
/// its end (see [`guard_body`]).
fn close_if_unread(
    mut response: Response<Body>,
    read_to_end: Option<Arc<AtomicBool>>,
) -> Response<Body> {
    if read_to_end.is_some_and(|flag| !flag.load(Ordering::Acquire)) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that records when it has been read to its end.
struct WatchedBody {
    inner: Body,
    read_to_end: Arc<AtomicBool>,
}

impl http_body::Body for WatchedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, std::task::Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read_to_end.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
