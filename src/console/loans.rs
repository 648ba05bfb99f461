//! The loans page: every loan, or one borrower's, by status and
//! delinquency bucket, a page at a time.

use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

use super::api::Refusal;
use super::form::{FormValues, encode};
use super::page::{self, Failure, FormState, Section, choices, money, next_page, short_id, text};
use super::session::Staff;
use crate::enums::{DelinquencyBucket, LoanStatus};

/// The query parameters the list passes on to the API.
const FILTERS: [&str; 3] = ["status", "bucket", "cursor"];

/// `GET /console/loans?status=&bucket=&email=&cursor=`.
pub async fn list(staff: Staff, RawQuery(query): RawQuery) -> Result<Response, Failure> {
    let sent = FormValues::parse(query.unwrap_or_default().as_bytes());
    let found = match sent.get("email") {
        Some(email) => loans_of_borrower(&staff, email, &sent).await,
        None => staff.fetch(format!("/loans{}", sent.query(&FILTERS))).await,
    };
    let status = found
        .as_ref()
        .err()
        .map_or(StatusCode::OK, |refusal| refusal.status);
    let body = listing(&staff, &sent, found.as_ref()).await;
    Ok(page::answer(
        status,
        page::page(&staff.viewer(), Section::Loans, "Loans", body),
    ))
}

/// The loans of the borrower with `email` (none when no one has it).
async fn loans_of_borrower(
    staff: &Staff,
    email: &str,
    sent: &FormValues,
) -> Result<Value, Refusal> {
    let users = staff
        .fetch(format!("/users?{}", encode(&[("email", email)])))
        .await?;
    match users["items"][0]["id"].as_str() {
        Some(user_id) => {
            staff
                .fetch(format!("/loans/user/{user_id}{}", sent.query(&FILTERS)))
                .await
        }
        None => Ok(serde_json::json!({ "items": [], "nextCursor": null })),
    }
}

/// The ids in `field` of `items`, for [`Staff::people`].
pub fn ids_of(items: &[Value], field: &str) -> Vec<String> {
    items
        .iter()
        .filter_map(|item| item[field].as_str())
        .map(str::to_owned)
        .collect()
}

async fn listing(staff: &Staff, sent: &FormValues, found: Result<&Value, &Refusal>) -> Markup {
    let filter = FormState {
        name: "filter",
        sent: Some(sent),
        refusal: found.err(),
    };
    let empty = Vec::new();
    let loans = found
        .ok()
        .and_then(|page| page["items"].as_array())
        .unwrap_or(&empty);
    let borrowers = ids_of(loans, "userId");
    let people = staff.people(borrowers).await;
    html! {
        form.filters method="get" action="/console/loans" {
            (filter.alert())
            (filter.select("status", "Status", &choices("Any status", LoanStatus::ALL.iter().map(|s| s.as_str())), ""))
            (filter.select("bucket", "Delinquency bucket", &choices("Any bucket", DelinquencyBucket::ALL.iter().map(|b| b.as_str())), ""))
            (filter.input("email", "Borrower email", "email", ""))
            button type="submit" { "Show loans" }
        }
        @if loans.is_empty() {
            p { "No loans match." }
        } @else {
            table {
                caption { "Loans, newest first" }
                thead { tr {
                    th scope="col" { "Loan" } th scope="col" { "Borrower" } th scope="col" { "Status" }
                    th scope="col" { "Bucket" } th.money scope="col" { "Principal" }
                    th.money scope="col" { "Outstanding" } th scope="col" { "Rate %" }
                    th scope="col" { "Term" } th scope="col" { "Next due" } th scope="col" { "Currency" }
                } }
                tbody {
                    @for loan in loans {
                        @let id = loan["id"].as_str().unwrap_or_default();
                        @let borrower = loan["userId"].as_str().and_then(|user| people.get(user));
                        tr {
                            th scope="row" { a href={ "/console/loans/" (id) } title=(id) { (short_id(id)) } }
                            td { (borrower.map_or_else(|| text(&loan["userId"]), |user| text(&user["email"]))) }
                            td { (text(&loan["status"])) }
                            td { (text(&loan["delinquencyBucket"])) }
                            (money(&loan["principal"]))
                            (money(&loan["outstanding"]))
                            td.money { (text(&loan["annualInterestRate"])) }
                            td { (text(&loan["termMonths"])) " months" }
                            td { (text(&loan["nextDueDate"])) }
                            td { (text(&loan["currency"])) }
                        }
                    }
                }
            }
        }
        (next_page("/console/loans", sent.pairs(), found.map_or(&Value::Null, |page| &page["nextCursor"])))
    }
}
