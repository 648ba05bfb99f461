//! The portfolio and the trial balance, each with its CSV download.

use axum::extract::RawQuery;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;

use super::api::{Call, Reply};
use super::form::{FormValues, encode};
use super::page::{self, Failure, FormState, Section, money, text};
use super::session::Staff;

/// `GET /console/portfolio`.
pub async fn portfolio(staff: Staff) -> Result<Response, Failure> {
    let report = staff.read("/reports/portfolio").await?;
    let currency = text(&report["currency"]);
    let empty = serde_json::Map::new();
    let body = html! {
        p { "As of " (text(&report["asOf"])) ", in " (currency) ". "
            a href="/console/portfolio.csv" download { "Download the buckets as CSV" } }
        table {
            caption { "Loans by status" }
            thead { tr { th scope="col" { "Status" } th.money scope="col" { "Loans" } } }
            tbody {
                @for (status, count) in report["loansByStatus"].as_object().unwrap_or(&empty) {
                    tr { th scope="row" { (status) } td.money { (text(count)) } }
                }
            }
        }
        table {
            caption { "Delinquency buckets (" (currency) ")" }
            thead { tr { th scope="col" { "Bucket" } th.money scope="col" { "Loans" } th.money scope="col" { "Principal outstanding" } } }
            tbody {
                @for row in report["buckets"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    tr { th scope="row" { (text(&row["bucket"])) } td.money { (text(&row["loans"])) } (money(&row["principalOutstanding"])) }
                }
            }
        }
        table {
            caption { "Totals (" (currency) ")" }
            tbody {
                @for (label, name) in [("Principal disbursed", "principalDisbursed"), ("Principal outstanding", "principalOutstanding"),
                    ("Interest collected", "interestCollected"), ("Late fees collected", "penaltiesCollected"),
                    ("Principal written off", "principalWrittenOff"), ("Recoveries", "recoveries")] {
                    tr { th scope="row" { (label) } (money(&report[name])) }
                }
                tr { th scope="row" { "PAR30" } td.money { (text(&report["par30"])) } }
                tr { th scope="row" { "PAR90" } td.money { (text(&report["par90"])) } }
            }
        }
    };
    Ok(page::answer(
        StatusCode::OK,
        page::page(&staff.viewer(), Section::Portfolio, "Portfolio", body),
    ))
}

/// `GET /console/trial-balance?asOf=`.
pub async fn trial_balance(staff: Staff, RawQuery(query): RawQuery) -> Result<Response, Failure> {
    let query = FormValues::parse(query.unwrap_or_default().as_bytes());
    let found = staff
        .fetch(format!(
            "/accounting/trial-balance{}",
            query.query(&["asOf"])
        ))
        .await;
    let form = FormState {
        name: "trial-balance",
        sent: Some(&query),
        refusal: found.as_ref().err(),
    };
    let status = found
        .as_ref()
        .err()
        .map_or(StatusCode::OK, |refusal| refusal.status);
    let body = html! {
        form.filters method="get" action="/console/trial-balance" {
            (form.alert())
            (form.input("asOf", "As of (empty: today)", "date", ""))
            button type="submit" { "Show trial balance" }
        }
        @if let Ok(balance) = &found {
            @let currency = text(&balance["currency"]);
            p { "As of " (text(&balance["asOf"])) ", in " (currency) ". "
                a href={ "/console/trial-balance.csv?" (encode(&[("asOf", &text(&balance["asOf"]))])) } download { "Download as CSV" } }
            table {
                caption { "Trial balance (" (currency) ")" }
                thead { tr {
                    th scope="col" { "Code" } th scope="col" { "Account" } th scope="col" { "Type" }
                    th.money scope="col" { "Debit" } th.money scope="col" { "Credit" } th.money scope="col" { "Balance" }
                } }
                tbody {
                    @for account in balance["accounts"].as_array().map(Vec::as_slice).unwrap_or_default() {
                        tr {
                            td { (text(&account["code"])) } th scope="row" { (text(&account["name"])) } td { (text(&account["type"])) }
                            (money(&account["debit"])) (money(&account["credit"])) (money(&account["balance"]))
                        }
                    }
                }
                tfoot { tr { th scope="row" colspan="3" { "Total" } (money(&balance["totalDebit"])) (money(&balance["totalCredit"])) td {} } }
            }
        }
    };
    Ok(page::answer(
        status,
        page::page(
            &staff.viewer(),
            Section::TrialBalance,
            "Trial balance",
            body,
        ),
    ))
}

/// `GET /console/portfolio.csv`.
pub async fn portfolio_csv(staff: Staff) -> Result<Response, Failure> {
    let name = format!("portfolio-{}", staff.today);
    csv(&staff, "/reports/portfolio".to_owned(), &name).await
}

/// `GET /console/trial-balance.csv?asOf=`.
pub async fn trial_balance_csv(
    staff: Staff,
    RawQuery(query): RawQuery,
) -> Result<Response, Failure> {
    let query = FormValues::parse(query.unwrap_or_default().as_bytes());
    let uri = format!("/accounting/trial-balance{}", query.query(&["asOf"]));
    let as_of = query
        .get("asOf")
        .map_or_else(|| staff.today.to_string(), str::to_owned);
    // The name goes into a header: only a day's characters are kept.
    let as_of: String = as_of
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    csv(&staff, uri, &format!("trial-balance-{as_of}")).await
}

/// The API's CSV of `uri`, streamed to the browser as a download named
/// after what it is and the day it is for.
async fn csv(staff: &Staff, uri: String, name: &str) -> Result<Response, Failure> {
    let call = Call::get(uri).header(header::ACCEPT, "text/csv");
    let response = staff.api.dispatch(&staff.caller, call).await;
    if !response.status().is_success() {
        return Err(Reply::read(response).await.as_refusal().into());
    }
    let (mut parts, body) = response.into_parts();
    let filename = format!("attachment; filename=\"{name}.csv\"");
    if let Ok(value) = HeaderValue::from_str(&filename) {
        parts.headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(Response::from_parts(parts, body).into_response())
}
