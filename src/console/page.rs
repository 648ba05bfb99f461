//! What every console page shares: the layout, the form helpers that put
//! a refusal's messages next to their fields and keep what was typed, how
//! money and dates are shown, and the pages for what went wrong.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

use super::api::Refusal;
use super::form::FormValues;
use crate::enums::Role;

/// The name of the hidden field that carries a form's CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";

/// Who is looking at a page, as its header shows them.
pub struct Viewer<'a> {
    pub username: &'a str,
    pub role: Role,
    pub csrf: &'a str,
}

/// The sections of the console, as its navigation lists them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Loans,
    Decisions,
    Portfolio,
    TrialBalance,
    Overdue,
    Jobs,
}

const SECTIONS: [(Section, &str, &str); 6] = [
    (Section::Loans, "/console/loans", "Loans"),
    (Section::Decisions, "/console/decisions", "Decisions"),
    (Section::Portfolio, "/console/portfolio", "Portfolio"),
    (
        Section::TrialBalance,
        "/console/trial-balance",
        "Trial balance",
    ),
    (Section::Overdue, "/console/overdue", "Overdue"),
    (Section::Jobs, "/console/jobs", "Jobs"),
];

/// A page of the console for a signed-in staff member.
pub fn page(viewer: &Viewer<'_>, section: Section, title: &str, body: Markup) -> Markup {
    document(
        title,
        html! {
            header {
                a.skip href="#main" { "Skip to content" }
                p.brand { a href="/console/loans" { "Loan Tracker" } " console" }
                nav aria-label="Console" {
                    ul {
                        @for (each, href, label) in SECTIONS {
                            li {
                                @if each == section {
                                    a href=(href) aria-current="page" { (label) }
                                } @else {
                                    a href=(href) { (label) }
                                }
                            }
                        }
                    }
                }
                form.sign-out method="post" action="/console/sign-out" {
                    (csrf(viewer.csrf))
                    span { "Signed in as " strong { (viewer.username) } " (" (viewer.role.as_str()) ") " }
                    button type="submit" { "Sign out" }
                }
            }
            main id="main" {
                h1 { (title) }
                (body)
            }
        },
    )
}

/// A page outside the signed-in console: sign-in, and what went wrong.
pub fn bare(title: &str, body: Markup) -> Markup {
    document(
        title,
        html! {
            header { p.brand { "Loan Tracker console" } }
            main id="main" { h1 { (title) } (body) }
        },
    )
}

fn document(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Loan Tracker" }
                link rel="stylesheet" href="/console/console.css";
            }
            body { (body) }
        }
    }
}

/// A page as an answer with `status`.
pub fn answer(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, Html(markup.into_string())).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `303 See Other` to `location`: where a form that worked sends the
/// browser, so that reloading the page does not send the form again.
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Why a page could not be shown.
#[derive(Debug)]
pub enum Failure {
    /// No live session: back to the sign-in page.
    SignedOut,
    /// The service refused (403, 404, 409, 429, …): its message, with its
    /// status.
    Refused(Refusal),
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Failure {
        Failure::Refused(refusal)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::SignedOut => see_other("/console"),
            Failure::Refused(refusal) => {
                let title = refusal
                    .status
                    .canonical_reason()
                    .unwrap_or("Something went wrong");
                answer(
                    refusal.status,
                    bare(
                        title,
                        html! {
                            p role="alert" { (refusal.message) }
                            @for (field, message) in &refusal.fields {
                                p { code { (field) } ": " (message) }
                            }
                            p { a href="/console/loans" { "Back to the console" } }
                        },
                    ),
                )
            }
        }
    }
}

/// The hidden CSRF field of a form.
pub fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(token); }
}

/// A form as it is shown: fresh, or again with what was typed and why
/// the service refused it.
#[derive(Clone, Copy)]
pub struct FormState<'a> {
    /// The form's name, which prefixes the ids of its fields.
    pub name: &'a str,
    pub sent: Option<&'a FormValues>,
    pub refusal: Option<&'a Refusal>,
}

impl<'a> FormState<'a> {
    pub fn fresh(name: &'a str) -> FormState<'a> {
        FormState {
            name,
            sent: None,
            refusal: None,
        }
    }

    /// This form, again with what was sent and why it was refused, if the
    /// refused form was this one.
    pub fn refused(name: &'a str, again: Option<&'a Again>) -> FormState<'a> {
        match again {
            Some(again) if again.form == name => FormState {
                name,
                sent: Some(&again.sent),
                refusal: Some(&again.refusal),
            },
            _ => FormState::fresh(name),
        }
    }

    fn value(&self, field: &str, default: &str) -> String {
        match self.sent {
            Some(sent) => sent.raw(field).to_owned(),
            None => default.to_owned(),
        }
    }

    fn id(&self, field: &str) -> String {
        format!("{}-{}", self.name, field)
    }

    /// The refusal's message for the whole form (what it says of each
    /// field is shown beside that field as well).
    pub fn alert(&self) -> Markup {
        html! {
            @if let Some(refusal) = self.refusal {
                p.refusal role="alert" id=(self.id("problem")) { (refusal.message) }
            }
        }
    }

    /// A labelled input, with its message when the refusal names it.
    pub fn input(&self, field: &str, label: &str, kind: &str, default: &str) -> Markup {
        let id = self.id(field);
        let message = self.refusal.and_then(|refusal| refusal.about(field));
        let error_id = format!("{id}-error");
        html! {
            p.field {
                label for=(id) { (label) }
                @if let Some(message) = message {
                    input id=(id) name=(field) type=(kind) value=(self.value(field, default))
                        aria-invalid="true" aria-describedby=(error_id);
                    span.error id=(error_id) { (message) }
                } @else {
                    input id=(id) name=(field) type=(kind) value=(self.value(field, default));
                }
            }
        }
    }

    /// A labelled choice among `options` (value, label), with its message
    /// when the refusal names it.
    pub fn select(
        &self,
        field: &str,
        label: &str,
        options: &[(&str, &str)],
        default: &str,
    ) -> Markup {
        let id = self.id(field);
        let chosen = self.value(field, default);
        let message = self.refusal.and_then(|refusal| refusal.about(field));
        let error_id = format!("{id}-error");
        html! {
            p.field {
                label for=(id) { (label) }
                select id=(id) name=(field) aria-invalid=[message.map(|_| "true")]
                    aria-describedby=[message.map(|_| error_id.as_str())] {
                    @for (value, text) in options {
                        option value=(value) selected[*value == chosen] { (text) }
                    }
                }
                @if let Some(message) = message {
                    span.error id=(error_id) { (message) }
                }
            }
        }
    }
}

/// A refused form, to show again.
pub struct Again {
    pub form: String,
    pub sent: FormValues,
    pub refusal: Refusal,
}

/// A money amount as the API gives it (a string with two decimals).
pub fn money(value: &Value) -> Markup {
    html! { td.money { (text(value)) } }
}

/// A JSON value as plain text: strings without quotes, `null` as a dash.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "—".to_owned(),
        other => other.to_string(),
    }
}

/// The first eight characters of an id: enough to tell rows apart on a
/// page; the whole id is in the link and its title.
pub fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// A timestamp in ISO form, to the second, in UTC.
pub fn timestamp(value: &Value) -> String {
    let text = text(value);
    match chrono::DateTime::parse_from_rfc3339(&text) {
        Ok(at) => at
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%SZ")
            .to_string(),
        Err(_) => text,
    }
}

/// The message after a form that worked, from the page's `done` parameter.
pub fn done_notice(message: Option<String>) -> Markup {
    html! {
        @if let Some(message) = message {
            p.done role="status" { (message) }
        }
    }
}

/// The link to the next page of a list, when there is one.
pub fn next_page(path: &str, query: &[(String, String)], next_cursor: &Value) -> Markup {
    link_to_next(path, query, "cursor", next_cursor, "Next page →")
}

/// The link to `target` (a path, with a `#fragment` if any) with the
/// page's parameters but `done`, and `cursor_name` set to `next_cursor`:
/// nothing when the list has no next page.
pub fn link_to_next(
    target: &str,
    query: &[(String, String)],
    cursor_name: &str,
    next_cursor: &Value,
    label: &str,
) -> Markup {
    let Some(cursor) = next_cursor.as_str() else {
        return html! {};
    };
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in query
        .iter()
        .filter(|(name, _)| name != cursor_name && name != "done")
    {
        serializer.append_pair(name, value);
    }
    serializer.append_pair(cursor_name, cursor);
    let (path, fragment) = target
        .split_once('#')
        .map_or((target, String::new()), |(path, fragment)| {
            (path, format!("#{fragment}"))
        });
    let href = format!("{path}?{}{fragment}", serializer.finish());
    html! { p.pages { a href=(href) rel="next" { (label) } } }
}

/// The options of a filter: "any" (an empty value) and then `values`, each
/// shown as it is sent.
pub fn choices(
    any: &'static str,
    values: impl Iterator<Item = &'static str>,
) -> Vec<(&'static str, &'static str)> {
    std::iter::once(("", any))
        .chain(values.map(|value| (value, value)))
        .collect()
}

/// The id in a console path, which must be a UUID before it goes into an
/// API path.
pub fn id_in_path(text: &str, what: &str) -> Result<uuid::Uuid, Failure> {
    uuid::Uuid::parse_str(text).map_err(|_| not_found(what))
}

pub fn not_found(what: &str) -> Failure {
    Failure::Refused(Refusal {
        status: StatusCode::NOT_FOUND,
        message: format!("There is no such {what}."),
        fields: Vec::new(),
    })
}
