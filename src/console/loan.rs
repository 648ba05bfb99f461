//! One loan on one page: its figures, pending decisions, the actions a
//! staff member may take on it, its schedule, payments and journal.

use axum::extract::{Path, RawQuery};
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;
use uuid::Uuid;

use super::api::{Call, Reply};
use super::form::{FormValues, encode};
use super::page::{
    self, Again, Failure, FormState, Section, done_notice, id_in_path, money, short_id, text,
    timestamp,
};
use super::session::{Staff, StaffForm};
use crate::enums::Role;

/// Everything the page shows, as the API gives it.
struct Loan {
    id: Uuid,
    loan: Value,
    borrower: Option<Value>,
    /// A page of its payments, newest first.
    payments: Listed,
    /// A page of its journal entries, in posting order.
    journal: Listed,
    payoff: Option<Result<Value, super::api::Refusal>>,
}

/// One page of a list on the loan page, and where the next one starts.
struct Listed {
    items: Vec<Value>,
    next_cursor: Value,
}

/// Payments and journal entries shown at a time: a screenful each, so
/// that a long-running loan's page stays quick; the rest are a link away.
const PER_PAGE: &str = "50";

impl Listed {
    /// The page of `path` (for the loan `loan_id`) that the query's
    /// `cursor_name` asks for.
    async fn read(
        staff: &Staff,
        path: &str,
        loan_id: Uuid,
        query: &FormValues,
        cursor_name: &str,
    ) -> Result<Listed, Failure> {
        let loan_id = loan_id.to_string();
        let mut pairs = vec![("loanId", loan_id.as_str()), ("limit", PER_PAGE)];
        if let Some(cursor) = query.get(cursor_name) {
            pairs.push(("cursor", cursor));
        }
        let mut page = staff.read(format!("{path}?{}", encode(&pairs))).await?;
        let items = match page["items"].take() {
            Value::Array(items) => items,
            _ => Vec::new(),
        };
        Ok(Listed {
            items,
            next_cursor: page["nextCursor"].take(),
        })
    }

    /// The link to the next page, keeping the page's other parameters.
    fn more(&self, loan_id: Uuid, query: &FormValues, cursor_name: &str, section: &str) -> Markup {
        page::link_to_next(
            &format!("/console/loans/{loan_id}#{section}"),
            query.pairs(),
            cursor_name,
            &self.next_cursor,
            &format!("More {section} →"),
        )
    }
}

/// `GET /console/loans/{id}?asOf=&done=&decision=` (`asOf`: the payoff
/// quote's day, when one was asked for).
pub async fn show(
    staff: Staff,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, Failure> {
    let id = id_in_path(&id, "loan")?;
    let query = FormValues::parse(query.unwrap_or_default().as_bytes());
    render(&staff, id, &query, None).await
}

async fn load(staff: &Staff, id: Uuid, query: &FormValues) -> Result<Loan, Failure> {
    let loan = staff.read(format!("/loans/{id}")).await?;
    let user_id = text(&loan["userId"]);
    let borrower = staff.fetch(format!("/users/{user_id}")).await.ok();
    let payments_path = format!("/payments/user/{user_id}");
    let payments = Listed::read(staff, &payments_path, id, query, "paymentsCursor").await?;
    let journal = Listed::read(staff, "/accounting/journal", id, query, "journalCursor").await?;
    let payoff = match query.get("asOf") {
        Some(as_of) => Some(
            staff
                .fetch(format!("/loans/{id}/payoff?{}", encode(&[("asOf", as_of)])))
                .await,
        ),
        None => None,
    };
    Ok(Loan {
        id,
        loan,
        borrower,
        payments,
        journal,
        payoff,
    })
}

async fn render(
    staff: &Staff,
    id: Uuid,
    query: &FormValues,
    again: Option<Again>,
) -> Result<Response, Failure> {
    let loan = load(staff, id, query).await?;
    let status = match (&again, &loan.payoff) {
        (Some(again), _) => again.refusal.status,
        (None, Some(Err(refusal))) => refusal.status,
        _ => StatusCode::OK,
    };
    let title = format!("Loan {}", short_id(&text(&loan.loan["id"])));
    let body = html! {
        (done_notice(done_message(query)))
        (figures(&loan))
        (pending(&loan.loan))
        (actions(staff, &loan, query, again.as_ref()))
        (schedule(&loan.loan))
        (payments(&loan))
        (loan.payments.more(loan.id, query, "paymentsCursor", "payments"))
        (journal(&loan))
        (loan.journal.more(loan.id, query, "journalCursor", "journal"))
    };
    Ok(page::answer(
        status,
        page::page(&staff.viewer(), Section::Loans, &title, body),
    ))
}

fn done_message(query: &FormValues) -> Option<String> {
    let message = match query.get("done")? {
        "approved" => "Loan approved; its schedule is below.".to_owned(),
        "rejected" => "Loan rejected.".to_owned(),
        "paid" => "Payment recorded.".to_owned(),
        "reversed" => "Payment reversed.".to_owned(),
        "requested" => format!(
            "Asked for a second person's confirmation: decision {} is in the decisions inbox.",
            query.get("decision").unwrap_or("?")
        ),
        _ => return None,
    };
    Some(message)
}

fn figures(loan: &Loan) -> Markup {
    let view = &loan.loan;
    let borrower = loan.borrower.as_ref().map_or_else(
        || text(&view["userId"]),
        |user| format!("{} ({})", text(&user["email"]), text(&user["username"])),
    );
    let figure = |label: &str, value: String| html! { dt { (label) } dd { (value) } };
    let amount = |label: &str, name: &str| {
        html! { dt { (label) } dd.money { (text(&view[name])) " " (text(&view["currency"])) } }
    };
    html! {
        section aria-labelledby="figures" {
            h2 id="figures" { "Figures" }
            dl.figures {
                (figure("Loan id", text(&view["id"])))
                (figure("Borrower", borrower))
                (figure("Status", text(&view["status"])))
                (amount("Principal", "principal"))
                (figure("Annual interest rate", format!("{} %", text(&view["annualInterestRate"]))))
                (figure("Term", format!("{} months", text(&view["termMonths"]))))
                (amount("Installment", "installmentAmount"))
                (amount("Total payable", "totalPayable"))
                (amount("Total paid", "totalPaid"))
                (amount("Outstanding", "outstanding"))
                (amount("Penalties outstanding", "penaltiesOutstanding"))
                (figure("Days past due", text(&view["daysPastDue"])))
                (figure("Delinquency bucket", text(&view["delinquencyBucket"])))
                (figure("Next due date", text(&view["nextDueDate"])))
                (figure("Applied", timestamp(&view["createdAt"])))
                (figure("Approved", timestamp(&view["approvedAt"])))
                @if !view["rejectionReason"].is_null() {
                    (figure("Rejection reason", text(&view["rejectionReason"])))
                }
                @if !view["writtenOffAt"].is_null() {
                    (figure("Written off", timestamp(&view["writtenOffAt"])))
                    (amount("Principal written off", "principalWrittenOff"))
                }
            }
        }
    }
}

fn pending(view: &Value) -> Markup {
    let empty = Vec::new();
    let decisions = view["pendingDecisions"].as_array().unwrap_or(&empty);
    html! {
        @if !decisions.is_empty() {
            section aria-labelledby="pending" {
                h2 id="pending" { "Pending decisions" }
                ul {
                    @for decision in decisions {
                        li {
                            (text(&decision["action"])) ", asked " (timestamp(&decision["requestedAt"]))
                            " — " a href="/console/decisions" { "decision " (short_id(&text(&decision["id"]))) }
                        }
                    }
                }
            }
        }
    }
}

const EXCESS_POLICIES: [(&str, &str); 4] = [
    ("", "The loan's default (next installments)"),
    (
        "NEXT_INSTALLMENTS",
        "NEXT_INSTALLMENTS: pay the next installments",
    ),
    ("REDUCE_TERM", "REDUCE_TERM: prepay, shorten the term"),
    (
        "REDUCE_INSTALLMENT",
        "REDUCE_INSTALLMENT: prepay, lower the installment",
    ),
];

fn actions(staff: &Staff, loan: &Loan, query: &FormValues, again: Option<&Again>) -> Markup {
    let status = loan.loan["status"].as_str().unwrap_or_default();
    let id = loan.id;
    let csrf = page::csrf(&staff.csrf);
    let form = |name| FormState::refused(name, again);
    let approve = form("approve");
    let reject = form("reject");
    let pay = form("pay");
    let write_off = form("write-off");
    let payoff = FormState {
        name: "payoff",
        sent: Some(query),
        refusal: loan.payoff.as_ref().and_then(|quote| quote.as_ref().err()),
    };
    let shown = |form: &str| match form {
        "approve" => status == "PENDING" && staff.actor.role == Role::Admin,
        "reject" => status == "PENDING",
        "pay" => matches!(status, "APPROVED" | "OVERDUE" | "WRITTEN_OFF"),
        "write-off" => status == "OVERDUE",
        _ => false,
    };
    // A form refused because the loan changed meanwhile (approved by
    // someone else, say) may no longer be on the page: why is said here.
    let unshown = again.filter(|again| !shown(&again.form));
    html! {
        section aria-labelledby="actions" {
            h2 id="actions" { "Actions" }
            @if let Some(again) = unshown {
                p.refusal role="alert" { (again.refusal.message) }
            }
            @if shown("approve") {
                form method="post" action={ "/console/loans/" (id) "/approve" } {
                    h3 { "Approve" }
                    (approve.alert()) (csrf)
                    (approve.input("annualInterestRate", "Annual interest rate (%; empty keeps the quoted rate)", "text", ""))
                    (approve.input("firstDueDate", "First due date (empty: one month from today)", "date", ""))
                    button type="submit" { "Approve loan" }
                }
            }
            @if shown("reject") {
                form method="post" action={ "/console/loans/" (id) "/reject" } {
                    h3 { "Reject" }
                    (reject.alert()) (csrf)
                    (reject.input("reason", "Reason", "text", ""))
                    button type="submit" { "Reject loan" }
                }
            }
            @if shown("pay") {
                (payment_form(staff, loan, pay))
            }
            @if matches!(status, "APPROVED" | "OVERDUE") {
                form method="get" action={ "/console/loans/" (id) } {
                    h3 { "Payoff quote" }
                    (payoff.alert())
                    (payoff.input("asOf", "As of (empty: today)", "date", ""))
                    button type="submit" { "Quote payoff" }
                }
                @if let Some(Ok(quote)) = &loan.payoff {
                    (payoff_quote(quote))
                }
            }
            @if shown("write-off") {
                form method="post" action={ "/console/loans/" (id) "/write-off" } {
                    h3 { "Request a write-off" }
                    p { "A write-off always needs a second person's confirmation." }
                    (write_off.alert()) (csrf)
                    (write_off.input("reason", "Reason", "text", ""))
                    button type="submit" { "Request write-off" }
                }
            }
        }
    }
}

fn payment_form(staff: &Staff, loan: &Loan, pay: FormState<'_>) -> Markup {
    let key = pay
        .sent
        .and_then(|sent| sent.get("idempotencyKey"))
        .map_or_else(|| Uuid::new_v4().to_string(), str::to_owned);
    let amount_label = format!("Amount ({})", text(&loan.loan["currency"]));
    html! {
        form method="post" action={ "/console/loans/" (loan.id) "/payments" } {
            h3 { "Record a payment" }
            (pay.alert())
            (page::csrf(&staff.csrf))
            input type="hidden" name="idempotencyKey" value=(key);
            (pay.input("amount", &amount_label, "text", ""))
            (pay.input("valueDate", "Value date (empty: today)", "date", ""))
            (pay.select("excess", "Excess over what is due", &EXCESS_POLICIES, ""))
            button type="submit" { "Record payment" }
        }
    }
}

fn payoff_quote(quote: &Value) -> Markup {
    html! {
        table {
            caption { "Payoff as of " (text(&quote["asOf"])) " (" (text(&quote["currency"])) ")" }
            tbody {
                tr { th scope="row" { "Principal" } (money(&quote["principal"])) }
                tr { th scope="row" { "Interest" } (money(&quote["interest"])) }
                tr { th scope="row" { "Penalties" } (money(&quote["penalties"])) }
                tr { th scope="row" { "Total" } (money(&quote["total"])) }
            }
        }
    }
}

fn schedule(view: &Value) -> Markup {
    let empty = Vec::new();
    let rows = view["schedule"].as_array().unwrap_or(&empty);
    html! {
        section aria-labelledby="schedule" {
            h2 id="schedule" { "Schedule" }
            @if rows.is_empty() {
                p { "No schedule until the loan is approved." }
            } @else {
                table {
                    caption { "Installments (" (text(&view["currency"])) ")" }
                    thead { tr {
                        th scope="col" { "#" } th scope="col" { "Due date" } th.money scope="col" { "Principal" }
                        th.money scope="col" { "Interest" } th.money scope="col" { "Late fee" }
                        th.money scope="col" { "Amount due" } th.money scope="col" { "Paid" } th scope="col" { "Status" }
                    } }
                    tbody {
                        @for row in rows {
                            tr {
                                td { (text(&row["number"])) } td { (text(&row["dueDate"])) }
                                (money(&row["principal"])) (money(&row["interest"])) (money(&row["penalty"]))
                                (money(&row["amountDue"])) (money(&row["amountPaid"])) td { (text(&row["status"])) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn payments(loan: &Loan) -> Markup {
    html! {
        section aria-labelledby="payments" {
            h2 id="payments" { "Payments" }
            @if loan.payments.items.is_empty() {
                p { "No payments yet." }
            } @else {
                table {
                    caption { "Payments, newest first (" (text(&loan.loan["currency"])) ")" }
                    thead { tr {
                        th scope="col" { "Payment" } th scope="col" { "Recorded" } th scope="col" { "Value date" }
                        th.money scope="col" { "Amount" } th.money scope="col" { "Principal" }
                        th.money scope="col" { "Interest" } th.money scope="col" { "Late fees" }
                        th scope="col" { "Excess" } th scope="col" { "Status" } th scope="col" { "Action" }
                    } }
                    tbody {
                        @for payment in &loan.payments.items {
                            @let id = text(&payment["id"]);
                            tr {
                                th scope="row" title=(id) { (short_id(&id)) }
                                td { (timestamp(&payment["paidAt"])) } td { (text(&payment["valueDate"])) }
                                (money(&payment["amount"])) (money(&payment["principalPortion"]))
                                (money(&payment["interestPortion"])) (money(&payment["penaltyPortion"]))
                                td { (text(&payment["excess"])) }
                                td {
                                    (text(&payment["status"]))
                                    @if !payment["reversedAt"].is_null() {
                                        " " (timestamp(&payment["reversedAt"])) ": " (text(&payment["reversalReason"]))
                                    }
                                }
                                td {
                                    @if payment["status"] == "POSTED" {
                                        a href={ "/console/payments/" (id) "/reverse?" (encode(&[("loanId", &loan.id.to_string())])) } {
                                            "Reverse…" span.visually-hidden { " payment " (short_id(&id)) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn journal(loan: &Loan) -> Markup {
    html! {
        section aria-labelledby="journal" {
            h2 id="journal" { "Journal" }
            @if loan.journal.items.is_empty() {
                p { "Nothing booked yet." }
            } @else {
                table {
                    caption { "Journal entries, in posting order (" (text(&loan.loan["currency"])) ")" }
                    thead { tr {
                        th scope="col" { "Booked" } th scope="col" { "Value date" } th scope="col" { "Kind" }
                        th scope="col" { "Payment" } th scope="col" { "Account" }
                        th.money scope="col" { "Debit" } th.money scope="col" { "Credit" }
                    } }
                    tbody {
                        @for entry in &loan.journal.items {
                            @let empty = Vec::new();
                            @for (index, line) in entry["lines"].as_array().unwrap_or(&empty).iter().enumerate() {
                                tr {
                                    @if index == 0 {
                                        td { (text(&entry["bookingDate"])) } td { (text(&entry["valueDate"])) }
                                        td { (text(&entry["kind"])) } td { (short_id(&text(&entry["paymentId"]))) }
                                    } @else {
                                        td {} td {} td {} td {}
                                    }
                                    td { (text(&line["account"])) } (money(&line["debit"])) (money(&line["credit"]))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Where a form that worked sends the browser: the loan page, saying what
/// happened (and which decision waits when the request needs four eyes).
pub fn after(loan_id: Uuid, done: &str, reply: &Reply) -> Response {
    let location = if reply.status == StatusCode::ACCEPTED {
        let decision = text(&reply.json()["id"]);
        format!(
            "/console/loans/{loan_id}?{}",
            encode(&[("done", "requested"), ("decision", &decision)])
        )
    } else {
        format!("/console/loans/{loan_id}?done={done}")
    };
    page::see_other(&location)
}

/// Sends a loan form's call; a refusal shows the loan page again with the
/// form as it was sent and the service's messages beside its fields.
async fn act(
    form: StaffForm,
    loan_id: Uuid,
    name: &str,
    done: &str,
    call: Call,
) -> Result<Response, Failure> {
    match form.send(name, call).await {
        (_, Ok(reply)) => Ok(after(loan_id, done, &reply)),
        (staff, Err(again)) => render(&staff, loan_id, &FormValues::default(), Some(again)).await,
    }
}

/// `POST /console/loans/{id}/approve` (`annualInterestRate`, `firstDueDate`).
pub async fn approve(Path(id): Path<String>, form: StaffForm) -> Result<Response, Failure> {
    let id = id_in_path(&id, "loan")?;
    let body = form.values.json(&["annualInterestRate", "firstDueDate"]);
    let call = Call::send(Method::PATCH, format!("/loans/{id}/approve"), Some(body));
    act(form, id, "approve", "approved", call).await
}

/// `POST /console/loans/{id}/reject` (`reason`).
pub async fn reject(Path(id): Path<String>, form: StaffForm) -> Result<Response, Failure> {
    let id = id_in_path(&id, "loan")?;
    let body = form.values.json(&["reason"]);
    let call = Call::send(Method::PATCH, format!("/loans/{id}/reject"), Some(body));
    act(form, id, "reject", "rejected", call).await
}

/// `POST /console/loans/{id}/payments` (`amount`, `valueDate`, `excess`,
/// and the form's `idempotencyKey`: sending it twice records it once).
pub async fn record_payment(Path(id): Path<String>, form: StaffForm) -> Result<Response, Failure> {
    let id = id_in_path(&id, "loan")?;
    let body = form.values.json(&["amount", "valueDate", "excess"]);
    let mut call = Call::send(Method::POST, format!("/payments/{id}"), Some(body));
    if let Some(key) = form.values.get("idempotencyKey") {
        call = call.header(header::HeaderName::from_static("idempotency-key"), key);
    }
    act(form, id, "pay", "paid", call).await
}

/// `POST /console/loans/{id}/write-off` (`reason`).
pub async fn write_off(Path(id): Path<String>, form: StaffForm) -> Result<Response, Failure> {
    let id = id_in_path(&id, "loan")?;
    let body = form.values.json(&["reason"]);
    let call = Call::send(Method::POST, format!("/loans/{id}/write-off"), Some(body));
    act(form, id, "write-off", "requested", call).await
}
