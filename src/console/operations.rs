//! The overdue installments, and the jobs: their latest runs, and running
//! `overdue-check` or `payment-reminders` now.

use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::html;

use super::api::{Call, Refusal};
use super::form::FormValues;
use super::page::{
    self, Again, Failure, FormState, Section, done_notice, money, next_page, short_id, text,
};
use super::session::{Staff, StaffForm};
use crate::app::AppState;

/// `GET /console/overdue?asOf=&cursor=`.
pub async fn overdue(staff: Staff, RawQuery(query): RawQuery) -> Result<Response, Failure> {
    let query = FormValues::parse(query.unwrap_or_default().as_bytes());
    let found = staff
        .fetch(format!(
            "/payments/overdue{}",
            query.query(&["asOf", "cursor"])
        ))
        .await;
    let form = FormState {
        name: "overdue",
        sent: Some(&query),
        refusal: found.as_ref().err(),
    };
    let empty = Vec::new();
    let items = found
        .as_ref()
        .ok()
        .and_then(|page| page["items"].as_array())
        .unwrap_or(&empty);
    let body = html! {
        form.filters method="get" action="/console/overdue" {
            (form.alert())
            (form.input("asOf", "As of (empty: today)", "date", ""))
            button type="submit" { "Show overdue installments" }
        }
        @if items.is_empty() {
            p { "No installment is overdue." }
        } @else {
            table {
                caption { "Overdue installments, longest overdue first" }
                thead { tr {
                    th scope="col" { "Loan" } th scope="col" { "Installment" } th scope="col" { "Due date" }
                    th.money scope="col" { "Days overdue" } th.money scope="col" { "Amount due" }
                    th.money scope="col" { "Paid" } th.money scope="col" { "Late fee" } th scope="col" { "Currency" }
                } }
                tbody {
                    @for item in items {
                        @let loan = text(&item["loanId"]);
                        tr {
                            th scope="row" { a href={ "/console/loans/" (loan) } title=(loan) { (short_id(&loan)) } }
                            td { (text(&item["installmentNumber"])) } td { (text(&item["dueDate"])) }
                            td.money { (text(&item["daysOverdue"])) }
                            (money(&item["amountDue"])) (money(&item["amountPaid"])) (money(&item["penalty"]))
                            td { (text(&item["currency"])) }
                        }
                    }
                }
            }
        }
        (next_page("/console/overdue", query.pairs(), found.as_ref().map_or(&serde_json::Value::Null, |page| &page["nextCursor"])))
    };
    let status = found
        .as_ref()
        .err()
        .map_or(StatusCode::OK, |refusal| refusal.status);
    Ok(page::answer(
        status,
        page::page(
            &staff.viewer(),
            Section::Overdue,
            "Overdue installments",
            body,
        ),
    ))
}

/// The jobs a person may run from the console.
const RUNNABLE: [(&str, &str); 2] = [
    (
        "overdue-check",
        "Mark overdue installments and charge late fees",
    ),
    (
        "payment-reminders",
        "Remind borrowers of installments due soon",
    ),
];

/// The latest runs shown.
const RUNS_SHOWN: u64 = 20;

/// `GET /console/jobs?done=`.
pub async fn jobs(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(query): RawQuery,
) -> Result<Response, Failure> {
    let query = FormValues::parse(query.unwrap_or_default().as_bytes());
    render_jobs(&state, &staff, &query, None).await
}

async fn render_jobs(
    state: &AppState,
    staff: &Staff,
    query: &FormValues,
    again: Option<Again>,
) -> Result<Response, Failure> {
    let runs = crate::jobs::recent_runs(state.db.fresh(), RUNS_SHOWN)
        .await
        .map_err(|error| {
            tracing::warn!(%error, "the console could not read the job runs");
            Failure::Refused(Refusal {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "The service is temporarily unavailable; try again shortly.".to_owned(),
                fields: Vec::new(),
            })
        })?;
    let done = query.get("done").map(|job| {
        format!(
            "{job} ran for {}: {} rows processed.",
            query.get("asOf").unwrap_or("today"),
            query.get("processed").unwrap_or("0")
        )
    });
    let body = html! {
        (done_notice(done))
        @for (job, description) in RUNNABLE {
            @let form = FormState::refused(job, again.as_ref());
            form method="post" action={ "/console/jobs/" (job) "/run" } {
                h2 { "Run " (job) }
                p { (description) "." }
                (form.alert()) (page::csrf(&staff.csrf))
                (form.input("asOf", "As of (empty: today)", "date", ""))
                button type="submit" { "Run " (job) " now" }
            }
        }
        table {
            caption { "Latest runs, newest first" }
            thead { tr {
                th scope="col" { "Job" } th scope="col" { "As of" } th scope="col" { "Triggered by" }
                th scope="col" { "Status" } th.money scope="col" { "Processed" }
                th scope="col" { "Started (UTC)" } th scope="col" { "Finished (UTC)" }
            } }
            tbody {
                @for run in &runs {
                    tr {
                        th scope="row" { (run.job) } td { (run.as_of) } td { (run.triggered_by) }
                        td { (run.status) } td.money { (run.processed) }
                        td { (run.started_at.format("%Y-%m-%d %H:%M:%SZ")) }
                        td { (run.finished_at.map_or_else(|| "—".to_owned(), |at| at.format("%Y-%m-%d %H:%M:%SZ").to_string())) }
                    }
                }
            }
        }
    };
    let status = again
        .as_ref()
        .map_or(StatusCode::OK, |again| again.refusal.status);
    Ok(page::answer(
        status,
        page::page(&staff.viewer(), Section::Jobs, "Jobs", body),
    ))
}

/// `POST /console/jobs/{name}/run` (`asOf`).
pub async fn run(
    State(state): State<AppState>,
    Path(name): Path<String>,
    form: StaffForm,
) -> Result<Response, Failure> {
    let Some((job, _)) = RUNNABLE.iter().find(|(job, _)| *job == name) else {
        return Err(page::not_found("job"));
    };
    let call = Call::send(
        Method::POST,
        format!("/admin/jobs/{job}/run"),
        Some(form.values.json(&["asOf"])),
    );
    match form.send(job, call).await {
        (_, Ok(reply)) => {
            let report = reply.json();
            let location = format!(
                "/console/jobs?{}",
                super::form::encode(&[
                    ("done", job),
                    ("asOf", &text(&report["asOf"])),
                    ("processed", &text(&report["processed"])),
                ])
            );
            Ok(page::see_other(&location))
        }
        (staff, Err(again)) => {
            render_jobs(&state, &staff, &FormValues::default(), Some(again)).await
        }
    }
}
