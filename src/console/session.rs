//! Signing in and out of the console, and who is signed in.
//!
//! Signing in is the API's login (same accounts, rate limit and audit);
//! the session cookie holds the refresh token it issues, so a console
//! session is a login session like any other: signing out revokes it,
//! and it lives as long as a refresh token does. Every form carries a
//! CSRF token derived from the session (from a nonce cookie for the
//! sign-in form itself), and the cookies are `SameSite=Strict` besides.

use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde_json::{Value, json};

use super::api::{Api, Call, Caller, Refusal, Reply};
use super::form::FormValues;
use super::page::{self, Again, CSRF_FIELD, Failure, Viewer};
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::auth::service::session_holder;
use crate::auth::tokens::new_refresh_token;
use crate::enums::Role;
use crate::http::client_address::is_https;

const SESSION_COOKIE: &str = "lt_console";
const SIGN_IN_COOKIE: &str = "lt_console_sign_in";
/// Form tokens are signed for one purpose each.
const SESSION_PURPOSE: &str = "console session";
const SIGN_IN_PURPOSE: &str = "console sign-in";
/// The largest form the console accepts (a reason is at most 500
/// characters; everything else is short).
const LARGEST_FORM: usize = 64 * 1024;

/// A signed-in staff member (ADMIN or MANAGER), with what the pages need
/// to call the API for them.
pub struct Staff {
    pub actor: Actor,
    pub username: String,
    pub csrf: String,
    pub caller: Caller,
    pub api: Api,
    /// Today in the service's time zone.
    pub today: chrono::NaiveDate,
    session_token: String,
}

impl Staff {
    pub fn viewer(&self) -> Viewer<'_> {
        Viewer {
            username: &self.username,
            role: self.actor.role,
            csrf: &self.csrf,
        }
    }

    pub async fn call(&self, call: Call) -> super::api::Reply {
        self.api.call(&self.caller, call).await
    }

    /// A read, or why the API refused it.
    pub async fn fetch(&self, uri: impl Into<String>) -> Result<Value, Refusal> {
        let reply = self.call(Call::get(uri)).await;
        match reply.refusal() {
            Some(refusal) => Err(refusal),
            None => Ok(reply.json()),
        }
    }

    /// A read that must work for the page to be shown.
    pub async fn read(&self, uri: impl Into<String>) -> Result<Value, Failure> {
        Ok(self.fetch(uri).await?)
    }

    /// Every item of a list, page after page (a loan's payments and
    /// journal entries: a few hundred at most).
    pub async fn read_all(&self, uri: &str) -> Result<Vec<Value>, Failure> {
        let separator = if uri.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page_uri = match &cursor {
                Some(cursor) => format!("{uri}{separator}limit=100&cursor={cursor}"),
                None => format!("{uri}{separator}limit=100"),
            };
            let mut page = self.read(page_uri).await?;
            if let Some(Value::Array(more)) = page.get_mut("items").map(Value::take) {
                items.extend(more);
            }
            match page["nextCursor"].as_str() {
                Some(next) => {
                    cursor = Some(form_urlencoded::byte_serialize(next.as_bytes()).collect())
                }
                None => return Ok(items),
            }
        }
    }

    /// The usernames and emails of `ids`, as far as they can be read.
    pub async fn people(&self, ids: Vec<String>) -> HashMap<String, Value> {
        let mut people = HashMap::new();
        for id in ids {
            if people.contains_key(&id) {
                continue;
            }
            if let Ok(user) = self.fetch(format!("/users/{id}")).await {
                people.insert(id, user);
            }
        }
        people
    }
}

fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(each, _)| *each == name)
        .map(|(_, value)| value)
}

fn api_of(parts: &Parts) -> Result<Api, Failure> {
    parts.extensions.get::<Api>().cloned().ok_or_else(|| {
        Failure::Refused(Refusal {
            status: StatusCode::NOT_FOUND,
            message: "There is no console here.".to_owned(),
            fields: Vec::new(),
        })
    })
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure> {
        let token = cookie(parts, SESSION_COOKIE)
            .ok_or(Failure::SignedOut)?
            .to_owned();
        let holder = session_holder(state.db.fresh(), &token, state.now())
            .await
            .map_err(|error| {
                tracing::warn!(%error, "console session lookup failed");
                Failure::Refused(Refusal {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    message: "The service is temporarily unavailable; try again shortly."
                        .to_owned(),
                    fields: Vec::new(),
                })
            })?
            .ok_or(Failure::SignedOut)?;
        if holder.actor.role == Role::User {
            return Err(staff_only());
        }
        Ok(Staff {
            csrf: state.tokens.form_token(SESSION_PURPOSE, &token),
            caller: Caller::of(parts, Some(holder.actor)),
            api: api_of(parts)?,
            actor: holder.actor,
            username: holder.username,
            today: state.today(),
            session_token: token,
        })
    }
}

fn staff_only() -> Failure {
    Failure::Refused(Refusal {
        status: StatusCode::FORBIDDEN,
        message: "The console is for staff (ADMIN and MANAGER). Borrowers use the API or their lender's app."
            .to_owned(),
        fields: Vec::new(),
    })
}

fn form_refused() -> Failure {
    Failure::Refused(Refusal {
        status: StatusCode::FORBIDDEN,
        message: "This form did not come from your console session (its CSRF token is missing or wrong). Reload the page and send it again."
            .to_owned(),
        fields: Vec::new(),
    })
}

async fn form_body(body: axum::body::Body) -> Result<FormValues, Failure> {
    let bytes = axum::body::to_bytes(body, LARGEST_FORM)
        .await
        .map_err(|_| {
            Failure::Refused(Refusal {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                message: "The form is larger than the console accepts.".to_owned(),
                fields: Vec::new(),
            })
        })?;
    Ok(FormValues::parse(&bytes))
}

/// A form sent by a signed-in staff member, its CSRF token checked.
pub struct StaffForm {
    pub staff: Staff,
    pub values: FormValues,
}

impl FromRequest<AppState> for StaffForm {
    type Rejection = Failure;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Failure> {
        let (mut parts, body) = request.into_parts();
        let staff = Staff::from_request_parts(&mut parts, state).await?;
        let values = form_body(body).await?;
        if !state.tokens.form_token_matches(
            SESSION_PURPOSE,
            &staff.session_token,
            values.raw(CSRF_FIELD),
        ) {
            return Err(form_refused());
        }
        Ok(StaffForm { staff, values })
    }
}

impl StaffForm {
    /// Sends the form's call to the API: its answer, or the form as it was
    /// sent (under the name `form`) with the reason it was refused.
    pub async fn send(self, form: &str, call: Call) -> (Staff, Result<Reply, Again>) {
        let StaffForm { staff, values } = self;
        let reply = staff.call(call).await;
        let outcome = match reply.refusal() {
            None => Ok(reply),
            Some(refusal) => Err(Again {
                form: form.to_owned(),
                sent: values,
                refusal,
            }),
        };
        (staff, outcome)
    }
}

/// Whether the session cookie may say `Secure`: the service speaks plain
/// HTTP itself, so only when a trusted proxy says the client used HTTPS.
pub struct Transport {
    https: bool,
}

impl FromRequestParts<AppState> for Transport {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Transport {
            https: is_https(parts, &state.config.trusted_proxies),
        })
    }
}

fn set_cookie(response: &mut Response, name: &str, value: &str, max_age_secs: u64, https: bool) {
    let secure = if https { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    );
    if let Ok(value) = HeaderValue::from_str(&text) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// `GET /console`: the sign-in form, or the loans for someone signed in.
pub async fn sign_in_page(
    State(state): State<AppState>,
    transport: Transport,
    request: Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    if Staff::from_request_parts(&mut parts, &state).await.is_ok() {
        return page::see_other("/console/loans");
    }
    sign_in_form(&state, &parts, &transport, StatusCode::OK, None, None)
}

/// The sign-in form; its nonce cookie is kept when the browser has one,
/// so two open sign-in tabs both work.
fn sign_in_form(
    state: &AppState,
    parts: &Parts,
    transport: &Transport,
    status: StatusCode,
    sent: Option<&FormValues>,
    refusal: Option<&Refusal>,
) -> Response {
    let nonce = cookie(parts, SIGN_IN_COOKIE)
        .filter(|nonce| {
            nonce.len() == 43
                && nonce
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(|| new_refresh_token().0, str::to_owned);
    let form = page::FormState {
        name: "sign-in",
        sent,
        refusal,
    };
    let markup = page::bare(
        "Sign in",
        html! {
            p { "The console is for the lender's staff: sign in with your ADMIN or MANAGER account." }
            form method="post" action="/console/sign-in" {
                (form.alert())
                (page::csrf(&state.tokens.form_token(SIGN_IN_PURPOSE, &nonce)))
                (form.input("identifier", "Email or username", "text", ""))
                (form.input("password", "Password", "password", ""))
                button type="submit" { "Sign in" }
            }
        },
    );
    let mut response = page::answer(status, markup);
    set_cookie(&mut response, SIGN_IN_COOKIE, &nonce, 3600, transport.https);
    response
}

/// `POST /console/sign-in`.
pub async fn sign_in(
    State(state): State<AppState>,
    transport: Transport,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let api = match api_of(&parts) {
        Ok(api) => api,
        Err(failure) => return failure.into_response(),
    };
    let sent = match form_body(body).await {
        Ok(sent) => sent,
        Err(failure) => return failure.into_response(),
    };
    let token_matches = cookie(&parts, SIGN_IN_COOKIE).is_some_and(|nonce| {
        state
            .tokens
            .form_token_matches(SIGN_IN_PURPOSE, nonce, sent.raw(CSRF_FIELD))
    });
    if !token_matches {
        return form_refused().into_response();
    }
    let identifier = sent.get("identifier").unwrap_or_default();
    let kind = if identifier.contains('@') {
        "email"
    } else {
        "username"
    };
    let caller = Caller::of(&parts, None);
    let login = json!({ kind: identifier, "password": sent.raw("password") });
    let reply = api
        .call(
            &caller,
            Call::send(Method::POST, "/auth/login", Some(login)),
        )
        .await;
    if let Some(refusal) = reply.refusal() {
        let mut response = refused_sign_in(&state, &parts, &transport, &sent, refusal);
        if let Some(retry_after) = reply.headers.get(header::RETRY_AFTER) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after.clone());
        }
        return response;
    }
    let answer = reply.json();
    let refresh_token = answer["refreshToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if answer["user"]["role"] == "USER" {
        // Signed in, but not for the console: that session ends at once.
        let logout = json!({ "refreshToken": refresh_token });
        api.call(
            &caller,
            Call::send(Method::POST, "/auth/logout", Some(logout)),
        )
        .await;
        return staff_only().into_response();
    }
    let mut response = page::see_other("/console/loans");
    set_cookie(
        &mut response,
        SESSION_COOKIE,
        &refresh_token,
        state.tokens.refresh_ttl.as_secs(),
        transport.https,
    );
    set_cookie(&mut response, SIGN_IN_COOKIE, "", 0, transport.https);
    response
}

/// The sign-in form again, with the identifier typed (never the
/// password) and the API's reason.
fn refused_sign_in(
    state: &AppState,
    parts: &Parts,
    transport: &Transport,
    sent: &FormValues,
    mut refusal: Refusal,
) -> Response {
    let kept = FormValues::parse(
        super::form::encode(&[("identifier", sent.raw("identifier"))]).as_bytes(),
    );
    for (field, _) in &mut refusal.fields {
        if field == "email" || field == "username" {
            *field = "identifier".to_owned();
        }
    }
    sign_in_form(
        state,
        parts,
        transport,
        refusal.status,
        Some(&kept),
        Some(&refusal),
    )
}

/// `POST /console/sign-out`: the session is revoked (audited as a
/// logout), and the cookie cleared.
pub async fn sign_out(transport: Transport, form: StaffForm) -> Response {
    let staff = form.staff;
    staff
        .call(Call::send(
            Method::POST,
            "/auth/logout",
            Some(json!({ "refreshToken": staff.session_token })),
        ))
        .await;
    let mut response = page::answer(
        StatusCode::OK,
        page::bare(
            "Signed out",
            html! {
                p role="status" { "You are signed out." }
                p { a href="/console" { "Sign in again" } }
            },
        ),
    );
    set_cookie(&mut response, SESSION_COOKIE, "", 0, transport.https);
    response
}
