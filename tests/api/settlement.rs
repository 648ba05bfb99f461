//! § Prepayments and § Settlement: payments that prepay principal and
//! reschedule the open installments, the payoff quote, and settling a loan
//! early — each one replayable and reversible.
//!
//! Figures are the golden loan's (support.rs; 10 000.00 at 12 % over 12
//! months, first due 2026-02-15, 888.49 a month) and come from
//! `tests/golden/reamortize.py` and `tests/golden/payoff.py`, which compute
//! them with exact decimals apart from the Rust code.

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::servicing::{
    cents, find_payment, history, id_of, installment, loan, moment, notified, pay_with,
    payment_request, portions, post_request, reverse,
};
use crate::support::{TestApp, TestResponse, TestUser, send_to};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `(number, dueDate, principal, interest, status)` of every installment.
fn schedule(loan: &Value) -> Vec<(i64, String, String, String, String)> {
    loan["schedule"]
        .as_array()
        .expect("schedule")
        .iter()
        .map(|row| {
            (
                row["number"].as_i64().expect("number"),
                row["dueDate"].as_str().expect("due").to_owned(),
                row["principal"].as_str().expect("principal").to_owned(),
                row["interest"].as_str().expect("interest").to_owned(),
                row["status"].as_str().expect("status").to_owned(),
            )
        })
        .collect()
}

fn row(
    number: i64,
    due: &str,
    principal: &str,
    interest: &str,
    status: &str,
) -> (i64, String, String, String, String) {
    (
        number,
        due.to_owned(),
        principal.to_owned(),
        interest.to_owned(),
        status.to_owned(),
    )
}

/// `(status, installmentAmount, termMonths, totalPayable, totalPaid,
/// outstanding)`.
fn figures(loan: &Value) -> (String, String, i64, String, String, String) {
    (
        loan["status"].as_str().expect("status").to_owned(),
        loan["installmentAmount"]
            .as_str()
            .expect("amount")
            .to_owned(),
        loan["termMonths"].as_i64().expect("term"),
        loan["totalPayable"].as_str().expect("payable").to_owned(),
        loan["totalPaid"].as_str().expect("paid").to_owned(),
        loan["outstanding"]
            .as_str()
            .expect("outstanding")
            .to_owned(),
    )
}

fn expect(
    status: &str,
    amount: &str,
    term: i64,
    payable: &str,
    paid: &str,
    outstanding: &str,
) -> (String, String, i64, String, String, String) {
    (
        status.to_owned(),
        amount.to_owned(),
        term,
        payable.to_owned(),
        paid.to_owned(),
        outstanding.to_owned(),
    )
}

async fn payoff(app: &TestApp, user: &TestUser, loan_id: Uuid, query: &str) -> TestResponse {
    app.get(&format!("/loans/{loan_id}/payoff{query}"), &user.token)
        .await
}

/// `(principal, interest, penalties, total)` of a quote.
fn quote(body: &Value) -> (&str, &str, &str, &str) {
    (
        body["principal"].as_str().expect("principal"),
        body["interest"].as_str().expect("interest"),
        body["penalties"].as_str().expect("penalties"),
        body["total"].as_str().expect("total"),
    )
}

fn settle_request(
    user: &TestUser,
    loan_id: Uuid,
    amount: &str,
    key: Option<&str>,
) -> Request<Body> {
    post_request(
        &format!("/loans/{loan_id}/settle"),
        &user.token,
        &json!({ "amount": amount }),
        key,
    )
}

async fn settle(app: &TestApp, user: &TestUser, loan_id: Uuid, amount: &str) -> TestResponse {
    app.send(settle_request(user, loan_id, amount, None)).await
}

async fn assert_books_agree(app: &TestApp, loan_id: Uuid) {
    let differences = app.verify_books(loan_id).await.expect("verify");
    assert!(differences.is_empty(), "{differences:#?}");
}

/// The golden loan's schedule as approved, with #1's status given.
fn approved_schedule(first_status: &str) -> Vec<(i64, String, String, String, String)> {
    // payoff.py prints these with `annuity_schedule`.
    let principal = [
        "788.49", "796.37", "804.34", "812.38", "820.51", "828.71", "837.00", "845.37", "853.82",
        "862.36", "870.98", "879.67",
    ];
    let interest = [
        "100.00", "92.12", "84.15", "76.11", "67.98", "59.78", "51.49", "43.12", "34.67", "26.13",
        "17.51", "8.80",
    ];
    let due = [
        "2026-02-15",
        "2026-03-15",
        "2026-04-15",
        "2026-05-15",
        "2026-06-15",
        "2026-07-15",
        "2026-08-15",
        "2026-09-15",
        "2026-10-15",
        "2026-11-15",
        "2026-12-15",
        "2027-01-15",
    ];
    (0..12)
        .map(|index| {
            row(
                index as i64 + 1,
                due[index],
                principal[index],
                interest[index],
                if index == 0 { first_status } else { "PENDING" },
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Prepayments
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_reduce_term_prepayment_shortens_the_schedule_and_its_reversal_restores_it() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    assert_eq!(
        schedule(&loan(&app, &admin, loan_id).await),
        approved_schedule("PENDING")
    );
    app.clock.set(moment("2026-02-15"));
    // #1 (888.49) is due today; the 2000.00 beyond it prepays principal.
    let prepayment = pay_with(
        &app,
        &borrower,
        loan_id,
        json!({ "amount": "2888.49", "excess": "REDUCE_TERM" }),
    )
    .await;
    prepayment.assert_status(201);
    assert_eq!(prepayment.body["excess"], "REDUCE_TERM");
    // The excess is principal: 788.49 of #1 + 2000.00.
    assert_eq!(portions(&prepayment.body), ("2788.49", "100.00", "0.00"));
    assert_eq!(prepayment.body["loanOutstanding"], "7559.70");

    // reamortize.py: 888.49 a month on 7211.51 takes nine installments,
    // #2 816.37 + 72.12 … #10 447.31 + 4.47.
    let after = loan(&app, &borrower, loan_id).await;
    let rows = schedule(&after);
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[0], row(1, "2026-02-15", "788.49", "100.00", "PAID"));
    assert_eq!(rows[1], row(2, "2026-03-15", "816.37", "72.12", "PENDING"));
    assert_eq!(rows[9], row(10, "2026-11-15", "447.31", "4.47", "PENDING"));
    let new_principal: i64 = rows[1..].iter().map(|r| cents(&r.2)).sum();
    assert_eq!(
        new_principal, 721_151,
        "Σ new principal is 9211.51 − 2000.00"
    );
    // totalPayable = 10 000.00 + 100.00 + 348.19 of new interest; the term
    // stays as approved.
    assert_eq!(
        figures(&after),
        expect("APPROVED", "888.49", 12, "10448.19", "2888.49", "7559.70")
    );
    assert_books_agree(&app, loan_id).await;

    // payoff.py: on 2026-03-01, #2's period (02-15 → 03-15) is 14 of 28
    // days old: 72.12 × 14 ÷ 28 = 36.06.
    let quoted = payoff(&app, &borrower, loan_id, "?asOf=2026-03-01").await;
    quoted.assert_status(200);
    assert_eq!(quote(&quoted.body), ("7211.51", "36.06", "0.00", "7247.57"));

    let manager = app.manager().await;
    let reversed = reverse(&app, &manager, &id_of(&prepayment.body), "cheque bounced").await;
    reversed.assert_status(200);
    let restored = loan(&app, &borrower, loan_id).await;
    // #1 is due today and unpaid again: not yet overdue.
    assert_eq!(schedule(&restored), approved_schedule("PENDING"));
    assert_eq!(
        figures(&restored),
        expect("APPROVED", "888.49", 12, "10661.86", "0.00", "10661.86")
    );
    assert_books_agree(&app, loan_id).await;
}

#[tokio::test]
async fn a_reduce_installment_prepayment_keeps_the_count_with_a_smaller_amount() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    app.clock.set(moment("2026-02-15"));
    let prepayment = pay_with(
        &app,
        &admin,
        loan_id,
        json!({ "amount": "2888.49", "excess": "REDUCE_INSTALLMENT" }),
    )
    .await;
    prepayment.assert_status(201);
    // reamortize.py: 7211.51 over 11 months is 695.58 a month; #2 623.46
    // + 72.12, #12 688.69 + 6.89; 439.87 of interest in all.
    let after = loan(&app, &borrower, loan_id).await;
    let rows = schedule(&after);
    assert_eq!(rows.len(), 12);
    assert_eq!(rows[1], row(2, "2026-03-15", "623.46", "72.12", "PENDING"));
    assert_eq!(rows[11], row(12, "2027-01-15", "688.69", "6.89", "PENDING"));
    assert_eq!(
        figures(&after),
        expect("APPROVED", "695.58", 12, "10539.87", "2888.49", "7651.38")
    );
    assert_books_agree(&app, loan_id).await;
}

#[tokio::test]
async fn a_zero_rate_loan_prepays_by_even_parts() {
    let app = TestApp::spawn().await;
    let borrower = app.register("borrower").await;
    let admin = app.admin().await;
    let loan_id = app.apply(&borrower, "1200.00", 12).await;
    app.approve(
        &admin,
        loan_id,
        Some(json!({ "annualInterestRate": "0", "firstDueDate": "2026-02-15" })),
    )
    .await;
    app.clock.set(moment("2026-02-15"));
    pay_with(
        &app,
        &borrower,
        loan_id,
        json!({ "amount": "350.00", "excess": "REDUCE_TERM" }),
    )
    .await
    .assert_status(201);
    // reamortize.py: 850.00 at 100.00 a month is eight of 100.00 and one
    // of 50.00.
    let after = loan(&app, &borrower, loan_id).await;
    let rows = schedule(&after);
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[8], row(9, "2026-10-15", "100.00", "0.00", "PENDING"));
    assert_eq!(rows[9], row(10, "2026-11-15", "50.00", "0.00", "PENDING"));
    assert_eq!(
        figures(&after),
        expect("APPROVED", "100.00", 12, "1200.00", "350.00", "850.00")
    );
    assert_books_agree(&app, loan_id).await;
}

#[tokio::test]
async fn a_prepayment_must_leave_principal_and_up_to_what_is_due_changes_nothing() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    app.clock.set(moment("2026-02-15"));
    // 888.49 due + 9211.51, all the open principal: that is a settlement.
    let everything = pay_with(
        &app,
        &borrower,
        loan_id,
        json!({ "amount": "10100.00", "excess": "REDUCE_TERM" }),
    )
    .await;
    everything.assert_invalid_fields(&["amount"]);
    let message = everything.body["errors"][0]["message"]
        .as_str()
        .expect("message");
    assert!(message.contains("9211.51"), "{message}");
    // SETTLEMENT has its own endpoint.
    pay_with(
        &app,
        &borrower,
        loan_id,
        json!({ "amount": "100.00", "excess": "SETTLEMENT" }),
    )
    .await
    .assert_invalid_fields(&["excess"]);
    assert_eq!(app.count("payments").await, 0, "nothing was recorded");

    // No more than is due: the policy makes no difference.
    let due_only = pay_with(
        &app,
        &borrower,
        loan_id,
        json!({ "amount": "888.49", "excess": "REDUCE_INSTALLMENT" }),
    )
    .await;
    due_only.assert_status(201);
    assert_eq!(
        schedule(&loan(&app, &admin, loan_id).await),
        approved_schedule("PAID")
    );

    // With #1 paid, nothing is due today: all of it prepays, and the
    // first new installment owes a full month's interest on the rest.
    let ahead = pay_with(
        &app,
        &borrower,
        loan_id,
        json!({ "amount": "9211.50", "excess": "REDUCE_TERM" }),
    )
    .await;
    ahead.assert_status(201);
    assert_eq!(portions(&ahead.body), ("9211.50", "0.00", "0.00"));
    let rows = schedule(&loan(&app, &admin, loan_id).await);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1], row(2, "2026-03-15", "0.01", "0.00", "PENDING"));
    assert_books_agree(&app, loan_id).await;
}

#[tokio::test]
async fn a_backdated_prepayment_is_replayed_in_its_place() {
    let app = TestApp::spawn().await;
    let (borrower, _admin, loan_id) = app.golden_loan().await;
    let manager = app.manager().await;
    // Five days after #1's due date; nothing has run, so #1 would carry a
    // fee — but the transfer arrived on the due date.
    app.clock.set(moment("2026-02-20"));
    let prepayment = pay_with(
        &app,
        &manager,
        loan_id,
        json!({ "amount": "2888.49", "valueDate": "2026-02-15", "excess": "REDUCE_TERM" }),
    )
    .await;
    prepayment.assert_status(201);
    assert_eq!(portions(&prepayment.body), ("2788.49", "100.00", "0.00"));
    let after = loan(&app, &borrower, loan_id).await;
    let rows = schedule(&after);
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[9], row(10, "2026-11-15", "447.31", "4.47", "PENDING"));
    assert_eq!(after["penaltiesOutstanding"], "0.00");
    assert_eq!(
        figures(&after),
        expect("APPROVED", "888.49", 12, "10448.19", "2888.49", "7559.70")
    );
    assert_books_agree(&app, loan_id).await;
}

#[tokio::test]
async fn installments_a_prepayment_removed_come_back_as_they_were_without_new_notices() {
    let app = TestApp::spawn().await;
    let borrower = app.register("borrower").await;
    let admin = app.admin().await;
    let manager = app.manager().await;
    // 3000.00 at 12 % over 3 months: 1020.07, 1020.07, 1020.06.
    let loan_id = app.apply(&borrower, "3000.00", 3).await;
    app.approve(
        &admin,
        loan_id,
        Some(json!({ "annualInterestRate": "12", "firstDueDate": "2026-02-15" })),
    )
    .await;
    // Nothing paid by 2026-04-20: each installment is overdue with a fee
    // of 5 % of 1020.07 or 1020.06 = 51.00, notified once each.
    app.clock.set(moment("2026-04-20"));
    app.run_job(&admin, "overdue-check", "2026-04-20").await;
    assert_eq!(notified(&app, &borrower, "PAYMENT_OVERDUE").await, 3);
    assert_eq!(notified(&app, &borrower, "PENALTY_APPLIED").await, 3);

    // A transfer of 2000.00 made on 2026-01-20 turns up, meant to shorten
    // the loan: 1000.00 is left, which one installment of 1000.00 + 10.00
    // repays. #2 and #3 go, and their fees with them; #1 now owes 5 % of
    // 1010.00 = 50.50.
    let prepayment = pay_with(
        &app,
        &manager,
        loan_id,
        json!({ "amount": "2000.00", "valueDate": "2026-01-20", "excess": "REDUCE_TERM" }),
    )
    .await;
    prepayment.assert_status(201);
    let shortened = loan(&app, &borrower, loan_id).await;
    assert_eq!(
        schedule(&shortened),
        vec![row(1, "2026-02-15", "1000.00", "10.00", "OVERDUE")]
    );
    assert_eq!(
        figures(&shortened),
        expect("OVERDUE", "1020.07", 3, "3010.00", "2000.00", "1060.50")
    );
    let waived: Vec<Value> = app
        .audit_rows("PENALTY_WAIVED")
        .await
        .into_iter()
        .map(|entry| entry.details)
        .collect();
    assert_eq!(waived.len(), 3, "{waived:?}");
    for (number, penalty) in [(1, "50.50"), (2, "0.00"), (3, "0.00")] {
        assert!(
            waived.contains(
                &json!({ "installmentNumber": number, "previous": "51.00", "penalty": penalty })
            ),
            "{waived:?}"
        );
    }
    assert_books_agree(&app, loan_id).await;

    // The transfer is recalled: #2 and #3 come back, under the ids they
    // had, so their fees are audited again but not notified again.
    reverse(&app, &admin, &id_of(&prepayment.body), "recalled")
        .await
        .assert_status(200);
    let restored = loan(&app, &borrower, loan_id).await;
    assert_eq!(schedule(&restored).len(), 3);
    assert_eq!(
        figures(&restored),
        expect("OVERDUE", "1020.07", 3, "3060.20", "0.00", "3213.20")
    );
    assert_eq!(app.audit_rows("PENALTY_APPLIED").await.len(), 3 + 3);
    assert_eq!(notified(&app, &borrower, "PAYMENT_OVERDUE").await, 3);
    assert_eq!(notified(&app, &borrower, "PENALTY_APPLIED").await, 3);
    assert_books_agree(&app, loan_id).await;
}

// ---------------------------------------------------------------------------
// Payoff quotes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_payoff_quote_accrues_the_current_period_by_days_and_charges_fees_due_by_then() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    // payoff.py, for each day.
    let today = payoff(&app, &borrower, loan_id, "").await;
    today.assert_status(200);
    assert_eq!(
        today.body,
        json!({
            "loanId": loan_id, "asOf": "2026-01-15", "currency": "USD",
            "principal": "10000.00", "interest": "0.00", "penalties": "0.00", "total": "10000.00"
        })
    );
    let mid_period = payoff(&app, &admin, loan_id, "?asOf=2026-01-30").await;
    mid_period.assert_status(200);
    assert_eq!(
        quote(&mid_period.body),
        ("10000.00", "48.39", "0.00", "10048.39")
    );
    // A later day assumes nothing is paid: #1's fee (44.42) is charged on
    // 02-16; #2's period is 5 of 28 days old.
    let later = payoff(&app, &borrower, loan_id, "?asOf=2026-02-20").await;
    later.assert_status(200);
    assert_eq!(
        quote(&later.body),
        ("10000.00", "116.45", "44.42", "10160.87")
    );
    // A quote changes nothing.
    assert_eq!(
        loan(&app, &admin, loan_id).await["penaltiesOutstanding"],
        "0.00"
    );

    payoff(&app, &borrower, loan_id, "?asOf=2026-01-14")
        .await
        .assert_invalid_fields(&["asOf"]);
    payoff(&app, &borrower, loan_id, "?asOf=soon")
        .await
        .assert_invalid_fields(&["asOf"]);
    let stranger = app.register("stranger").await;
    payoff(&app, &stranger, loan_id, "")
        .await
        .assert_problem(404);
    let pending = app.apply(&borrower, "500.00", 6).await;
    payoff(&app, &borrower, pending, "")
        .await
        .assert_problem(409);
}

// ---------------------------------------------------------------------------
// Settlement
// ---------------------------------------------------------------------------

#[tokio::test]
async fn settling_takes_exactly_the_quote_waives_the_rest_and_closes_the_loan() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    app.clock.set(moment("2026-01-30"));

    for amount in ["10000.00", "0"] {
        let wrong = settle(&app, &borrower, loan_id, amount).await;
        wrong.assert_invalid_fields(&["amount"]);
        let message = wrong.body["errors"][0]["message"]
            .as_str()
            .expect("message");
        assert!(message.contains("10048.39"), "{message}");
    }
    assert_eq!(app.count("payments").await, 0);

    let settled = app
        .send(settle_request(
            &borrower,
            loan_id,
            "10048.39",
            Some("settle-1"),
        ))
        .await;
    settled.assert_status(201);
    assert_eq!(settled.body["excess"], "SETTLEMENT");
    assert_eq!(settled.body["valueDate"], "2026-01-30");
    assert_eq!(settled.body["loanStatus"], "PAID");
    assert_eq!(settled.body["loanOutstanding"], "0.00");
    assert_eq!(portions(&settled.body), ("10000.00", "48.39", "0.00"));
    // The same key and body: the same answer.
    let again = app
        .send(settle_request(
            &borrower,
            loan_id,
            "10048.39",
            Some("settle-1"),
        ))
        .await;
    again.assert_status(201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, settled.body);

    // Every installment is PAID; its interest is what was paid of it.
    let closed = loan(&app, &borrower, loan_id).await;
    assert_eq!(
        figures(&closed),
        expect("PAID", "888.49", 12, "10048.39", "10048.39", "0.00")
    );
    assert_eq!(installment(&closed, 1)["interest"], "48.39");
    assert_eq!(installment(&closed, 2)["interest"], "0.00");
    assert!(schedule(&closed).iter().all(|r| r.4 == "PAID"));
    assert_eq!(
        find_payment(
            &history(&app, &admin, &borrower, loan_id).await,
            &id_of(&settled.body)
        )["excess"],
        "SETTLEMENT"
    );

    let settled_audit = app.audit_rows("LOAN_SETTLED").await;
    assert_eq!(settled_audit.len(), 1);
    assert_eq!(
        settled_audit[0].details,
        json!({
            "paymentId": settled.body["id"],
            "quote": { "principal": "10000.00", "interest": "48.39", "penalties": "0.00", "total": "10048.39" },
            "interestWaived": "613.47",
        })
    );
    assert_eq!(app.audit_rows("LOAN_PAID").await.len(), 1);
    assert_eq!(notified(&app, &borrower, "LOAN_PAID").await, 1);

    // A closed loan takes no payment, no second settlement, no quote.
    settle(&app, &borrower, loan_id, "0.01")
        .await
        .assert_problem(409);
    settle(&app, &borrower, loan_id, "0")
        .await
        .assert_problem(409);
    let stranger = app.register("stranger").await;
    settle(&app, &stranger, loan_id, "0")
        .await
        .assert_problem(404);
    app.pay(&borrower, loan_id, json!("10.00"), None)
        .await
        .assert_problem(409);
    pay_with(
        &app,
        &admin,
        loan_id,
        json!({ "amount": "10.00", "valueDate": "2026-01-20" }),
    )
    .await
    .assert_problem(409);
    payoff(&app, &borrower, loan_id, "")
        .await
        .assert_problem(409);
    assert_books_agree(&app, loan_id).await;

    // Reversing the settlement restores the interest it waived.
    let reversed = reverse(&app, &admin, &id_of(&settled.body), "payment recalled").await;
    reversed.assert_status(200);
    let reopened = loan(&app, &borrower, loan_id).await;
    assert_eq!(
        figures(&reopened),
        expect("APPROVED", "888.49", 12, "10661.86", "0.00", "10661.86")
    );
    assert_eq!(schedule(&reopened), approved_schedule("PENDING"));
    assert_books_agree(&app, loan_id).await;
}

#[tokio::test]
async fn a_settlement_pays_late_fees_and_only_staff_or_the_owner_settle() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    // #1 unpaid past its due date and nothing has run: settling brings the
    // loan up to date first, so the quote holds the 44.42 fee.
    app.clock.set(moment("2026-02-20"));
    let stranger = app.register("stranger").await;
    settle(&app, &stranger, loan_id, "10160.87")
        .await
        .assert_problem(404);
    let settled = settle(&app, &admin, loan_id, "10160.87").await;
    settled.assert_status(201);
    assert_eq!(portions(&settled.body), ("10000.00", "116.45", "44.42"));
    let closed = loan(&app, &borrower, loan_id).await;
    assert_eq!(
        figures(&closed),
        expect("PAID", "888.49", 12, "10116.45", "10160.87", "0.00")
    );
    // Settling brought the loan up to date first, as the job would have:
    // #1's overdue notice and the loan's LOAN_OVERDUE entry are written
    // even though the settlement then paid it.
    assert_eq!(notified(&app, &borrower, "PENALTY_APPLIED").await, 1);
    assert_eq!(notified(&app, &borrower, "PAYMENT_OVERDUE").await, 1);
    assert_eq!(app.audit_rows("LOAN_OVERDUE").await.len(), 1);
    assert_books_agree(&app, loan_id).await;
}

#[tokio::test]
async fn a_payment_a_settlement_follows_is_reversed_only_after_the_settlement() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    let first = app.pay(&borrower, loan_id, json!("100.00"), None).await;
    first.assert_status(201);
    app.clock.set(moment("2026-01-30"));
    // 100.00 paid #1's interest ahead; accrued 48.39 is below it, so no
    // interest is owed: the principal alone.
    let quoted = payoff(&app, &borrower, loan_id, "").await;
    assert_eq!(
        quote(&quoted.body),
        ("10000.00", "0.00", "0.00", "10000.00")
    );
    let settled = settle(&app, &borrower, loan_id, "10000.00").await;
    settled.assert_status(201);

    reverse(&app, &admin, &id_of(&first.body), "bounced")
        .await
        .assert_problem(409);
    reverse(&app, &admin, &id_of(&settled.body), "recalled")
        .await
        .assert_status(200);
    reverse(&app, &admin, &id_of(&first.body), "bounced")
        .await
        .assert_status(200);
    let reopened = loan(&app, &borrower, loan_id).await;
    assert_eq!(
        figures(&reopened),
        expect("APPROVED", "888.49", 12, "10661.86", "0.00", "10661.86")
    );
    assert_books_agree(&app, loan_id).await;
}

#[tokio::test]
async fn a_settlement_racing_a_payment_leaves_one_refused_and_the_books_exact() {
    let app = TestApp::spawn().await;
    let (borrower, admin, _) = app.golden_loan().await;
    for round in 0..3 {
        // A fresh loan each round, quoted mid-period: the payment pays
        // interest that has accrued, so it always changes the quote.
        app.clock.set(moment("2026-01-15"));
        let loan_id = app.apply(&borrower, "10000.00", 12).await;
        app.approve(
            &admin,
            loan_id,
            Some(json!({ "annualInterestRate": "12", "firstDueDate": "2026-02-15" })),
        )
        .await;
        app.clock.set(moment("2026-01-30"));
        let quoted = payoff(&app, &borrower, loan_id, "").await;
        assert_eq!(quote(&quoted.body).3, "10048.39");
        let total = quoted.body["total"].as_str().expect("total").to_owned();
        let spawn = |request: Request<Body>| {
            let router = app.router.clone();
            tokio::spawn(async move { send_to(&router, request).await })
        };
        let payment = spawn(payment_request(
            &borrower,
            loan_id,
            &json!({ "amount": "50.00" }),
        ));
        let settlement = spawn(settle_request(&admin, loan_id, &total, None));
        let payment = payment.await.expect("payment task");
        let settlement = settlement.await.expect("settlement task");
        for response in [&payment, &settlement] {
            assert!(
                response.status.is_success() || response.status.is_client_error(),
                "never a 5xx: {} {}",
                response.status,
                response.text
            );
        }
        let accepted = [&payment, &settlement]
            .iter()
            .filter(|response| response.status == 201)
            .count();
        if settlement.status == 201 {
            // The payment came second: the loan was closed.
            assert_eq!(accepted, 1, "round {round}: {}", payment.text);
            payment.assert_problem(409);
        } else {
            // The payment came first: the quote no longer held.
            assert_eq!(accepted, 1, "round {round}: {}", settlement.text);
            settlement.assert_invalid_fields(&["amount"]);
        }
        assert_books_agree(&app, loan_id).await;
        let current = loan(&app, &admin, loan_id).await;
        let posted: i64 = history(&app, &admin, &borrower, loan_id)
            .await
            .iter()
            .filter(|p| p["status"] == "POSTED")
            .map(|p| cents(p["amount"].as_str().expect("amount")))
            .sum();
        assert_eq!(cents(current["totalPaid"].as_str().expect("paid")), posted);
        if settlement.status == 201 {
            assert_eq!(current["status"], "PAID");
        }
    }
    // The journal is in step with the loans after the race too.
    crate::books::assert_books_agree(&app).await;
}
