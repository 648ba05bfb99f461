//! Reversing a payment: a page of its own, reached from the loan's
//! payments, that says which payment and asks why.

use axum::extract::{Path, RawQuery};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::html;
use uuid::Uuid;

use super::api::Call;
use super::form::FormValues;
use super::loan::after;
use super::page::{
    self, Again, Failure, FormState, Section, id_in_path, not_found, short_id, text, timestamp,
};
use super::session::{Staff, StaffForm};

/// `GET /console/payments/{id}/reverse?loanId=`.
pub async fn show(
    staff: Staff,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, Failure> {
    let payment_id = id_in_path(&id, "payment")?;
    let query = FormValues::parse(query.unwrap_or_default().as_bytes());
    let loan_id = id_in_path(query.raw("loanId"), "loan")?;
    render(&staff, payment_id, loan_id, None).await
}

async fn render(
    staff: &Staff,
    payment_id: Uuid,
    loan_id: Uuid,
    again: Option<Again>,
) -> Result<Response, Failure> {
    let loan = staff.read(format!("/loans/{loan_id}")).await?;
    let payments = staff
        .read_all(&format!(
            "/payments/user/{}?loanId={loan_id}",
            text(&loan["userId"])
        ))
        .await?;
    let payment_id_text = payment_id.to_string();
    let payment = payments
        .iter()
        .find(|payment| payment["id"] == payment_id_text.as_str())
        .ok_or_else(|| not_found("payment of this loan"))?;
    let form = FormState::refused("reverse", again.as_ref());
    let status = again
        .as_ref()
        .map_or(StatusCode::OK, |again| again.refusal.status);
    let body = html! {
        dl.figures {
            dt { "Loan" } dd { a href={ "/console/loans/" (loan_id) } { (loan_id) } }
            dt { "Payment" } dd { (payment_id) }
            dt { "Amount" } dd.money { (text(&payment["amount"])) " " (text(&payment["currency"])) }
            dt { "Value date" } dd { (text(&payment["valueDate"])) }
            dt { "Recorded" } dd { (timestamp(&payment["paidAt"])) }
            dt { "Status" } dd { (text(&payment["status"])) }
        }
        form method="post" action={ "/console/payments/" (payment_id) "/reverse" } {
            (form.alert())
            (page::csrf(&staff.csrf))
            input type="hidden" name="loanId" value=(loan_id);
            (form.input("reason", "Reason", "text", ""))
            button type="submit" { "Reverse payment" }
        }
        p { a href={ "/console/loans/" (loan_id) } { "Back to the loan" } }
    };
    let title = format!("Reverse payment {}", short_id(&payment_id_text));
    Ok(page::answer(
        status,
        page::page(&staff.viewer(), Section::Loans, &title, body),
    ))
}

/// `POST /console/payments/{id}/reverse` (`reason`, and the `loanId` to
/// go back to).
pub async fn reverse(Path(id): Path<String>, form: StaffForm) -> Result<Response, Failure> {
    let payment_id = id_in_path(&id, "payment")?;
    let loan_id = id_in_path(form.values.raw("loanId"), "loan")?;
    let body = form.values.json(&["reason"]);
    let call = Call::send(
        Method::POST,
        format!("/payments/{payment_id}/reverse"),
        Some(body),
    );
    match form.send("reverse", call).await {
        (_, Ok(reply)) => Ok(after(loan_id, "reversed", &reply)),
        (staff, Err(again)) => render(&staff, payment_id, loan_id, Some(again)).await,
    }
}
