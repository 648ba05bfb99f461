//! The decisions inbox: what waits for a second person, who asked and
//! what for; confirm or reject (your own request: withdraw).

use axum::extract::{Path, RawQuery};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

use super::api::Call;
use super::form::{FormValues, encode};
use super::page::{
    self, Again, Failure, FormState, Section, choices, done_notice, id_in_path, next_page,
    short_id, text, timestamp,
};
use super::session::{Staff, StaffForm};
use crate::enums::{DecisionStatus, Role};

/// `GET /console/decisions?status=&cursor=` (PENDING unless another
/// status is chosen).
pub async fn inbox(staff: Staff, RawQuery(query): RawQuery) -> Result<Response, Failure> {
    let query = FormValues::parse(query.unwrap_or_default().as_bytes());
    render(&staff, &query, None).await
}

async fn render(
    staff: &Staff,
    query: &FormValues,
    again: Option<Again>,
) -> Result<Response, Failure> {
    let status = if query.pairs().iter().any(|(name, _)| name == "status") {
        query.get("status").unwrap_or_default()
    } else {
        "PENDING"
    };
    let mut pairs = vec![("status", status)];
    if let Some(cursor) = query.get("cursor") {
        pairs.push(("cursor", cursor));
    }
    pairs.retain(|(_, value)| !value.is_empty());
    let found = staff.read(format!("/decisions?{}", encode(&pairs))).await?;
    let empty = Vec::new();
    let decisions = found["items"].as_array().unwrap_or(&empty);
    let requesters = super::loans::ids_of(decisions, "requestedBy");
    let people = staff.people(requesters).await;
    let filter = FormState {
        name: "filter",
        sent: None,
        refusal: None,
    };
    // A refused form whose decision is no longer listed (decided by
    // someone else meanwhile) says why at the top.
    let unlisted = again.as_ref().filter(|again| {
        !decisions
            .iter()
            .any(|decision| again.form.ends_with(decision["id"].as_str().unwrap_or("-")))
    });
    let body = html! {
        (done_notice(query.get("done").map(|done| format!("Decision {done}."))))
        @if let Some(again) = unlisted {
            p.refusal role="alert" { (again.refusal.message) }
        }
        form.filters method="get" action="/console/decisions" {
            (filter.select("status", "Status", &choices("Any status", DecisionStatus::ALL.iter().map(|s| s.as_str())), status))
            button type="submit" { "Show decisions" }
        }
        @if decisions.is_empty() {
            p { "Nothing here." }
        }
        @for decision in decisions {
            @let requester = decision["requestedBy"].as_str().and_then(|id| people.get(id));
            (decision_card(staff, decision, requester, again.as_ref()))
        }
        (next_page("/console/decisions", query.pairs(), &found["nextCursor"]))
    };
    let status = again
        .as_ref()
        .map_or(StatusCode::OK, |again| again.refusal.status);
    Ok(page::answer(
        status,
        page::page(&staff.viewer(), Section::Decisions, "Decisions", body),
    ))
}

fn decision_card(
    staff: &Staff,
    decision: &Value,
    requester: Option<&Value>,
    again: Option<&Again>,
) -> Markup {
    let id = text(&decision["id"]);
    let own = decision["requestedBy"] == staff.actor.id.to_string().as_str();
    let (confirm_name, reject_name) = (format!("confirm-{id}"), format!("reject-{id}"));
    let confirm = FormState::refused(&confirm_name, again);
    let reject = FormState::refused(&reject_name, again);
    let empty = serde_json::Map::new();
    html! {
        article.decision aria-labelledby={ "decision-" (id) } {
            h2 id={ "decision-" (id) } { (text(&decision["action"])) " · decision " (short_id(&id)) }
            dl.figures {
                dt { "Loan" } dd { a href={ "/console/loans/" (text(&decision["loanId"])) } { (text(&decision["loanId"])) } }
                @if !decision["paymentId"].is_null() { dt { "Payment" } dd { (text(&decision["paymentId"])) } }
                dt { "Asked by" } dd { (requester.map_or_else(|| text(&decision["requestedBy"]), |user| format!("{} ({})", text(&user["username"]), text(&user["email"])))) }
                dt { "Asked at" } dd { (timestamp(&decision["requestedAt"])) }
                @for (name, value) in decision["request"].as_object().unwrap_or(&empty) {
                    dt { "Request: " (name) } dd { (text(value)) }
                }
                dt { "Status" } dd { (text(&decision["status"])) }
                @if !decision["decidedAt"].is_null() {
                    dt { "Decided" } dd { (timestamp(&decision["decidedAt"])) " by " (text(&decision["decidedBy"])) }
                }
                @if !decision["reason"].is_null() { dt { "Reason" } dd { (text(&decision["reason"])) } }
            }
            @if decision["status"] == "PENDING" {
                @if staff.actor.role == Role::Admin && !own {
                    form method="post" action={ "/console/decisions/" (id) "/confirm" } {
                        (confirm.alert()) (page::csrf(&staff.csrf))
                        button type="submit" { "Confirm" }
                    }
                }
                form method="post" action={ "/console/decisions/" (id) "/reject" } {
                    (reject.alert()) (page::csrf(&staff.csrf))
                    (reject.input("reason", if own { "Why withdraw it" } else { "Why reject it" }, "text", ""))
                    button type="submit" { @if own { "Withdraw my request" } @else { "Reject" } }
                }
            }
        }
    }
}

/// Decides; a refusal shows the inbox again with the message at the form.
async fn decide(
    form: StaffForm,
    form_name: String,
    done: &str,
    call: Call,
) -> Result<Response, Failure> {
    match form.send(&form_name, call).await {
        (_, Ok(_)) => Ok(page::see_other(&format!("/console/decisions?done={done}"))),
        (staff, Err(again)) => render(&staff, &FormValues::default(), Some(again)).await,
    }
}

/// `POST /console/decisions/{id}/confirm`.
pub async fn confirm(Path(id): Path<String>, form: StaffForm) -> Result<Response, Failure> {
    let id = id_in_path(&id, "decision")?;
    let call = Call::send(Method::POST, format!("/decisions/{id}/confirm"), None);
    decide(form, format!("confirm-{id}"), "confirmed", call).await
}

/// `POST /console/decisions/{id}/reject` (`reason`).
pub async fn reject(Path(id): Path<String>, form: StaffForm) -> Result<Response, Failure> {
    let id = id_in_path(&id, "decision")?;
    let body = form.values.json(&["reason"]);
    let call = Call::send(Method::POST, format!("/decisions/{id}/reject"), Some(body));
    decide(form, format!("reject-{id}"), "rejected", call).await
}
