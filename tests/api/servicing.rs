//! § Servicing: the loan as a ledger — value dates, reversals, late fees
//! that follow the replay, loans brought up to date by every operation, and
//! books that always agree with a fresh replay.
//!
//! The golden loan (support.rs): 10 000.00 at 12 % over 12 months, approved
//! on 2026-01-15, first due 2026-02-15. r = 1 % a month; installment 888.49;
//! #1: interest 100.00, principal 788.49 (balance 9211.51);
//! #2: interest 92.12 (9211.51 × 1 % = 92.1151), principal 796.37;
//! total payable 10 661.86 (eleven × 888.49 + a last of 888.47).
//! The late fee (default 5 %, grace 0) on an unpaid #1 is
//! 5 % of 888.49 = 44.4245 → 44.42.

use axum::body::Body;
use axum::http::{Method, Request};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TestApp, TestResponse, TestUser, send_to};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// 10:00 UTC on `day` (`YYYY-MM-DD`), for moving the clock.
pub(crate) fn moment(day: &str) -> DateTime<Utc> {
    loan_tracker::calendar::parse_date(day)
        .expect("a date")
        .and_hms_opt(10, 0, 0)
        .expect("a time")
        .and_utc()
}

/// A `POST` of `body` to `path` as `token`, with an optional
/// `Idempotency-Key`; built apart from sending so it can be spawned.
pub(crate) fn post_request(
    path: &str,
    token: &str,
    body: &Value,
    key: Option<&str>,
) -> Request<Body> {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json");
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    builder.body(Body::from(body.to_string())).expect("request")
}

/// `POST /payments/{loan_id}` with a whole body (`amount`, `valueDate`,
/// `excess`), as `pay` builds it but with the new fields.
pub(crate) fn payment_request(user: &TestUser, loan_id: Uuid, body: &Value) -> Request<Body> {
    post_request(&format!("/payments/{loan_id}"), &user.token, body, None)
}

pub(crate) async fn pay_with(
    app: &TestApp,
    user: &TestUser,
    loan_id: Uuid,
    body: Value,
) -> TestResponse {
    app.send(payment_request(user, loan_id, &body)).await
}

/// A payment of `amount` counting from `value_date`, recorded by staff.
async fn pay_on(
    app: &TestApp,
    staff: &TestUser,
    loan_id: Uuid,
    amount: &str,
    value_date: &str,
) -> TestResponse {
    pay_with(
        app,
        staff,
        loan_id,
        json!({ "amount": amount, "valueDate": value_date }),
    )
    .await
}

pub(crate) fn reverse_request(user: &TestUser, payment_id: &str, body: &Value) -> Request<Body> {
    post_request(
        &format!("/payments/{payment_id}/reverse"),
        &user.token,
        body,
        None,
    )
}

pub(crate) async fn reverse(
    app: &TestApp,
    user: &TestUser,
    payment_id: &str,
    reason: &str,
) -> TestResponse {
    app.send(reverse_request(
        user,
        payment_id,
        &json!({ "reason": reason }),
    ))
    .await
}

pub(crate) async fn loan(app: &TestApp, user: &TestUser, loan_id: Uuid) -> Value {
    let response = app.get(&format!("/loans/{loan_id}"), &user.token).await;
    response.assert_status(200);
    response.body
}

/// The stored view: the loan as `GET /loans` lists it.
async fn listed_loan(app: &TestApp, staff: &TestUser, loan_id: Uuid) -> Value {
    let response = app.get("/loans?limit=100", &staff.token).await;
    response.assert_status(200);
    response.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|item| item["id"] == json!(loan_id))
        .cloned()
        .expect("the loan is listed")
}

/// Every payment of `borrower` on `loan_id`, as staff see the history.
pub(crate) async fn history(
    app: &TestApp,
    staff: &TestUser,
    borrower: &TestUser,
    loan_id: Uuid,
) -> Vec<Value> {
    let response = app
        .get(
            &format!("/payments/user/{}?loanId={loan_id}&limit=100", borrower.id),
            &staff.token,
        )
        .await;
    response.assert_status(200);
    assert_eq!(
        response.body["nextCursor"],
        json!(null),
        "one page holds them all"
    );
    response.body["items"].as_array().expect("items").clone()
}

pub(crate) fn find_payment<'a>(payments: &'a [Value], id: &str) -> &'a Value {
    payments
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("payment {id} is in the history"))
}

pub(crate) fn id_of(payment: &Value) -> String {
    payment["id"].as_str().expect("payment id").to_owned()
}

pub(crate) fn portions(payment: &Value) -> (&str, &str, &str) {
    (
        payment["principalPortion"].as_str().expect("principal"),
        payment["interestPortion"].as_str().expect("interest"),
        payment["penaltyPortion"].as_str().expect("penalty"),
    )
}

pub(crate) fn installment(loan: &Value, number: usize) -> &Value {
    &loan["schedule"][number - 1]
}

/// A money string ("1234.56") in cents.
pub(crate) fn cents(money: &str) -> i64 {
    let (units, fraction) = money.split_once('.').expect("money has two decimals");
    assert_eq!(fraction.len(), 2, "{money}");
    assert!(!units.starts_with('-'), "{money}");
    units.parse::<i64>().expect("units") * 100 + fraction.parse::<i64>().expect("cents")
}

/// How many notifications of `kind` the user has.
pub(crate) async fn notified(app: &TestApp, user: &TestUser, kind: &str) -> usize {
    app.notification_kinds(user.id)
        .await
        .iter()
        .filter(|k| k.as_str() == kind)
        .count()
}

/// Asserts a posted payment's servicing fields.
#[track_caller]
fn assert_posted(payment: &Value, value_date: &str) {
    assert_eq!(payment["status"], "POSTED", "{payment}");
    assert_eq!(payment["valueDate"], value_date, "{payment}");
    assert_eq!(payment["excess"], "NEXT_INSTALLMENTS", "{payment}");
    assert_eq!(payment["reversedAt"], json!(null), "{payment}");
    assert_eq!(payment["reversedBy"], json!(null), "{payment}");
    assert_eq!(payment["reversalReason"], json!(null), "{payment}");
}

// ---------------------------------------------------------------------------
// Value dates and late fees
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_backdated_payment_that_shows_the_installment_paid_in_time_waives_its_fee() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    let manager = app.manager().await;
    app.run_job(&admin, "overdue-check", "2026-02-16").await;
    let charged = app.audit_rows("PENALTY_APPLIED").await;
    assert_eq!(charged.len(), 1);
    // 5 % of 888.49 = 44.4245 → 44.42.
    assert_eq!(
        charged[0].details,
        json!({ "installmentNumber": 1, "previous": "0.00", "penalty": "44.42" })
    );
    let before = loan(&app, &admin, loan_id).await;
    assert_eq!(before["status"], "OVERDUE");
    assert_eq!(before["penaltiesOutstanding"], "44.42");

    // The bank transfer was sent on the due date and arrived a day later.
    let response = pay_on(&app, &manager, loan_id, "888.49", "2026-02-15").await;
    response.assert_status(201);
    let payment = &response.body;
    assert_posted(payment, "2026-02-15");
    assert_eq!(payment["loanId"], json!(loan_id));
    assert_eq!(payment["userId"], json!(borrower.id));
    assert_eq!(payment["recordedBy"], json!(manager.id));
    assert_eq!(payment["amount"], "888.49");
    // Paid on the due date, before the fee day (2026-02-16): no fee, #1 in full.
    assert_eq!(portions(payment), ("788.49", "100.00", "0.00"));
    assert_eq!(payment["loanStatus"], "APPROVED");
    // 10661.86 − 888.49 = 9773.37; the 44.42 fee is gone.
    assert_eq!(payment["loanOutstanding"], "9773.37");

    let after = loan(&app, &borrower, loan_id).await;
    assert_eq!(after["status"], "APPROVED");
    assert_eq!(after["penaltiesOutstanding"], "0.00");
    assert_eq!(after["totalPaid"], "888.49");
    assert_eq!(after["outstanding"], "9773.37");
    assert_eq!(installment(&after, 1)["penalty"], "0.00");
    assert_eq!(installment(&after, 1)["amountDue"], "888.49");
    assert_eq!(installment(&after, 1)["amountPaid"], "888.49");
    assert_eq!(installment(&after, 1)["status"], "PAID");
    assert_eq!(installment(&after, 2)["status"], "PENDING");
    assert_eq!(
        listed_loan(&app, &admin, loan_id).await["status"],
        "APPROVED"
    );

    let waived = app.audit_rows("PENALTY_WAIVED").await;
    assert_eq!(waived.len(), 1);
    assert_eq!(
        waived[0].details,
        json!({ "installmentNumber": 1, "previous": "44.42", "penalty": "0.00" })
    );
    assert_eq!(waived[0].entity_type.as_deref(), Some("LOAN"));
    assert_eq!(waived[0].entity_id, Some(loan_id));
    assert_eq!(waived[0].actor_id, Some(manager.id));
    assert_eq!(
        app.audit_rows("PENALTY_APPLIED").await.len(),
        1,
        "no new fee"
    );
}

#[tokio::test]
async fn reversing_that_payment_brings_the_fee_back_but_notifies_it_only_once() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    app.run_job(&admin, "overdue-check", "2026-02-16").await;
    let paid = pay_on(&app, &admin, loan_id, "888.49", "2026-02-15").await;
    paid.assert_status(201);
    let payment_id = id_of(&paid.body);
    assert_eq!(app.audit_rows("PENALTY_WAIVED").await.len(), 1);

    // The transfer bounced.
    let response = reverse(&app, &admin, &payment_id, "transfer returned unpaid").await;
    response.assert_status(200);
    let reversed = &response.body;
    assert_eq!(reversed["id"], payment_id.as_str());
    assert_eq!(reversed["status"], "REVERSED");
    assert_eq!(reversed["reversedBy"], json!(admin.id));
    assert_eq!(reversed["reversalReason"], "transfer returned unpaid");
    assert_eq!(reversed["reversedAt"], "2026-02-16T10:00:00Z");
    assert_eq!(reversed["amount"], "888.49");
    assert_eq!(reversed["valueDate"], "2026-02-15");
    assert_eq!(reversed["excess"], "NEXT_INSTALLMENTS");
    assert_eq!(portions(reversed), ("0.00", "0.00", "0.00"));
    // As they were when it was recorded.
    assert_eq!(reversed["loanStatus"], "APPROVED");
    assert_eq!(reversed["loanOutstanding"], "9773.37");

    // Replayed without it, #1 was unpaid after 2026-02-15: the 44.42 is back.
    let after = loan(&app, &admin, loan_id).await;
    assert_eq!(after["status"], "OVERDUE");
    assert_eq!(after["totalPaid"], "0.00");
    assert_eq!(after["penaltiesOutstanding"], "44.42");
    // 10661.86 + 44.42 = 10706.28.
    assert_eq!(after["outstanding"], "10706.28");
    assert_eq!(installment(&after, 1)["status"], "OVERDUE");
    assert_eq!(installment(&after, 1)["penalty"], "44.42");
    assert_eq!(installment(&after, 1)["amountDue"], "932.91");
    assert_eq!(installment(&after, 1)["amountPaid"], "0.00");

    let in_history = history(&app, &admin, &borrower, loan_id).await;
    let listed = find_payment(&in_history, &payment_id);
    assert_eq!(listed["status"], "REVERSED");
    assert_eq!(portions(listed), ("0.00", "0.00", "0.00"));
    assert_eq!(listed["reversalReason"], "transfer returned unpaid");

    let audit = app.audit_rows("PAYMENT_REVERSED").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor_id, Some(admin.id));
    assert_eq!(audit[0].entity_type.as_deref(), Some("PAYMENT"));
    assert_eq!(
        audit[0].entity_id.map(|id| id.to_string()),
        Some(payment_id.clone())
    );
    assert_eq!(
        audit[0].details,
        json!({
            "reason": "transfer returned unpaid",
            "loanId": loan_id,
            "amount": "888.49",
            "valueDate": "2026-02-15"
        })
    );
    let applied = app.audit_rows("PENALTY_APPLIED").await;
    assert_eq!(applied.len(), 2, "the job's fee and the fee that came back");
    assert_eq!(
        applied[1].details,
        json!({ "installmentNumber": 1, "previous": "0.00", "penalty": "44.42" })
    );

    // The fee is audited again but notified once, ever.
    assert_eq!(
        app.notification_kinds(borrower.id).await,
        [
            "LOAN_APPROVED",
            "PAYMENT_OVERDUE",
            "PENALTY_APPLIED",
            "PAYMENT_RECEIVED",
            "PAYMENT_REVERSED"
        ]
    );
    let reversal_notes: Vec<_> = app
        .notifications(borrower.id)
        .await
        .into_iter()
        .filter(|n| serde_json::to_value(n.kind).ok() == Some(json!("PAYMENT_REVERSED")))
        .collect();
    assert_eq!(reversal_notes.len(), 1);
    assert_eq!(reversal_notes[0].loan_id, Some(loan_id));

    // The job finds the books current: nothing more is charged or sent.
    app.run_job(&admin, "overdue-check", "2026-02-16").await;
    assert_eq!(notified(&app, &borrower, "PENALTY_APPLIED").await, 1);
    assert_eq!(notified(&app, &borrower, "PAYMENT_OVERDUE").await, 1);
    assert_eq!(app.audit_rows("PENALTY_APPLIED").await.len(), 2);
    assert_eq!(
        loan(&app, &admin, loan_id).await["penaltiesOutstanding"],
        "44.42"
    );
}

#[tokio::test]
async fn reversing_the_payment_that_paid_off_a_loan_reopens_it() {
    let app = TestApp::spawn().await;
    let borrower = app.register("payer").await;
    let admin = app.admin().await;
    let manager = app.manager().await;
    // 1000.00 at 0 % over 3 months: 333.33, 333.33 and 333.34, due
    // 2026-02-15, 2026-03-15, 2026-04-15.
    let loan_id = app.apply(&borrower, "1000.00", 3).await;
    app.approve(&admin, loan_id, Some(json!({ "annualInterestRate": "0" })))
        .await;
    app.pay(&borrower, loan_id, json!("400.00"), None)
        .await
        .assert_status(201);
    let last = app.pay(&borrower, loan_id, json!("600.00"), None).await;
    last.assert_status(201);
    assert_eq!(last.body["loanStatus"], "PAID");
    let last_id = id_of(&last.body);

    let response = reverse(&app, &manager, &last_id, "cheque bounced").await;
    response.assert_status(200);
    assert_eq!(response.body["status"], "REVERSED");
    assert_eq!(response.body["reversedBy"], json!(manager.id));
    assert_eq!(portions(&response.body), ("0.00", "0.00", "0.00"));
    assert_eq!(
        response.body["loanStatus"], "PAID",
        "as when it was recorded"
    );
    assert_eq!(response.body["loanOutstanding"], "0.00");

    // Without the 600.00: #1 paid (333.33), #2 has 400.00 − 333.33 = 66.67.
    let reopened = loan(&app, &borrower, loan_id).await;
    assert_eq!(reopened["status"], "APPROVED", "nothing is past due yet");
    assert_eq!(reopened["totalPaid"], "400.00");
    assert_eq!(reopened["outstanding"], "600.00");
    assert_eq!(reopened["penaltiesOutstanding"], "0.00");
    assert_eq!(reopened["nextDueDate"], "2026-03-15");
    assert_eq!(installment(&reopened, 1)["status"], "PAID");
    assert_eq!(installment(&reopened, 2)["status"], "PARTIAL");
    assert_eq!(installment(&reopened, 2)["amountPaid"], "66.67");
    assert_eq!(installment(&reopened, 3)["status"], "PENDING");
    assert_eq!(installment(&reopened, 3)["amountPaid"], "0.00");
    assert_eq!(
        listed_loan(&app, &admin, loan_id).await["status"],
        "APPROVED"
    );
    assert_eq!(
        app.audit_rows("PAYMENT_REVERSED").await[0].details,
        json!({
            "reason": "cheque bounced",
            "loanId": loan_id,
            "amount": "600.00",
            "valueDate": "2026-01-15"
        })
    );
    assert_eq!(notified(&app, &borrower, "PAYMENT_REVERSED").await, 1);

    // Open again, it takes the money again.
    let again = app.pay(&borrower, loan_id, json!("600.00"), None).await;
    again.assert_status(201);
    assert_eq!(again.body["loanStatus"], "PAID");
    let paid = loan(&app, &borrower, loan_id).await;
    assert_eq!(paid["status"], "PAID");
    assert_eq!(paid["totalPaid"], "1000.00");
    assert_eq!(paid["outstanding"], "0.00");
}

#[tokio::test]
async fn a_reversal_after_a_due_date_reopens_a_paid_loan_as_overdue_with_its_fee() {
    let app = TestApp::spawn().await;
    let borrower = app.register("payer").await;
    let admin = app.admin().await;
    let manager = app.manager().await;
    // 333.33, 333.33, 333.34 due 2026-02-15, 2026-03-15, 2026-04-15.
    let loan_id = app.apply(&borrower, "1000.00", 3).await;
    app.approve(&admin, loan_id, Some(json!({ "annualInterestRate": "0" })))
        .await;
    let payoff = app.pay(&borrower, loan_id, json!("1000.00"), None).await;
    payoff.assert_status(201);
    assert_eq!(payoff.body["loanStatus"], "PAID");

    app.clock.set(moment("2026-02-20"));
    assert_eq!(loan(&app, &borrower, loan_id).await["status"], "PAID");
    let response = reverse(&app, &manager, &id_of(&payoff.body), "chargeback").await;
    response.assert_status(200);

    // Replayed without the payment, #1 (333.33) was unpaid after
    // 2026-02-15: 5 % of 333.33 = 16.6665 → 16.67.
    let reopened = loan(&app, &borrower, loan_id).await;
    assert_eq!(reopened["status"], "OVERDUE");
    assert_eq!(reopened["totalPaid"], "0.00");
    assert_eq!(reopened["penaltiesOutstanding"], "16.67");
    // 1000.00 + 16.67.
    assert_eq!(reopened["outstanding"], "1016.67");
    assert_eq!(installment(&reopened, 1)["status"], "OVERDUE");
    assert_eq!(installment(&reopened, 1)["penalty"], "16.67");
    assert_eq!(installment(&reopened, 1)["amountDue"], "350.00");
    assert_eq!(installment(&reopened, 2)["status"], "PENDING");
    assert_eq!(installment(&reopened, 2)["penalty"], "0.00");
    assert_eq!(
        listed_loan(&app, &admin, loan_id).await["status"],
        "OVERDUE"
    );

    let applied = app.audit_rows("PENALTY_APPLIED").await;
    assert_eq!(applied.len(), 1);
    assert_eq!(
        applied[0].details,
        json!({ "installmentNumber": 1, "previous": "0.00", "penalty": "16.67" })
    );
    // First time overdue: the reversal brought it up to date and notified.
    assert_eq!(notified(&app, &borrower, "PAYMENT_REVERSED").await, 1);
    assert_eq!(notified(&app, &borrower, "PAYMENT_OVERDUE").await, 1);
    assert_eq!(notified(&app, &borrower, "PENALTY_APPLIED").await, 1);
}

#[tokio::test]
async fn only_staff_reverse_with_a_reason_and_only_once() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    let manager = app.manager().await;
    let paid = app.pay(&borrower, loan_id, json!("100.00"), None).await;
    paid.assert_status(201);
    let payment_id = id_of(&paid.body);

    reverse(&app, &borrower, &payment_id, "I changed my mind")
        .await
        .assert_problem(403);
    reverse(&app, &admin, &Uuid::now_v7().to_string(), "no such payment")
        .await
        .assert_problem(404);
    app.call(
        Method::POST,
        &format!("/payments/{payment_id}/reverse"),
        None,
        Some(json!({ "reason": "anonymous" })),
    )
    .await
    .assert_problem(401);
    for body in [
        json!({}),
        json!({ "reason": "" }),
        json!({ "reason": "   " }),
        json!({ "reason": null }),
        json!({ "reason": "x".repeat(501) }),
    ] {
        app.send(reverse_request(&admin, &payment_id, &body))
            .await
            .assert_invalid_fields(&["reason"]);
    }
    app.send(reverse_request(
        &admin,
        &payment_id,
        &json!({ "reason": "bounced", "force": true }),
    ))
    .await
    .assert_problem(400);

    // Nothing of that was written.
    assert!(app.audit_rows("PAYMENT_REVERSED").await.is_empty());
    assert_eq!(notified(&app, &borrower, "PAYMENT_REVERSED").await, 0);
    let untouched = history(&app, &admin, &borrower, loan_id).await;
    assert_eq!(find_payment(&untouched, &payment_id)["status"], "POSTED");
    assert_eq!(loan(&app, &admin, loan_id).await["totalPaid"], "100.00");

    // 500 characters is the longest reason.
    let reason = "r".repeat(500);
    let reversed = reverse(&app, &manager, &payment_id, &reason).await;
    reversed.assert_status(200);
    assert_eq!(reversed.body["status"], "REVERSED");
    assert_eq!(reversed.body["reversalReason"], reason.as_str());

    let twice = reverse(&app, &admin, &payment_id, "again").await;
    twice.assert_problem(409);
    assert_eq!(app.audit_rows("PAYMENT_REVERSED").await.len(), 1);
    assert_eq!(notified(&app, &borrower, "PAYMENT_REVERSED").await, 1);
    let after = history(&app, &admin, &borrower, loan_id).await;
    assert_eq!(
        find_payment(&after, &payment_id)["reversedBy"],
        json!(manager.id)
    );
    assert_eq!(loan(&app, &admin, loan_id).await["totalPaid"], "0.00");
}

#[tokio::test]
async fn only_staff_backdate_and_only_within_the_loans_life() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    let manager = app.manager().await;
    // Before the first due date: no fee anywhere in this test.
    app.clock.set(moment("2026-02-10"));

    pay_with(
        &app,
        &borrower,
        loan_id,
        json!({ "amount": "100.00", "valueDate": "2026-02-10" }),
    )
    .await
    .assert_problem(403);
    // Whether or not it is a date: a USER may not send one at all.
    pay_with(
        &app,
        &borrower,
        loan_id,
        json!({ "amount": "100.00", "valueDate": "not a date" }),
    )
    .await
    .assert_problem(403);
    // Tomorrow is after today.
    pay_on(&app, &admin, loan_id, "100.00", "2026-02-11")
        .await
        .assert_invalid_fields(&["valueDate"]);
    // The earliest is the earlier of the approval date (2026-01-15) and
    // the first due date minus one month (2026-01-15).
    pay_on(&app, &admin, loan_id, "100.00", "2026-01-14")
        .await
        .assert_invalid_fields(&["valueDate"]);
    for bad in ["10/02/2026", "2026-2-10", "2026-02-30"] {
        pay_on(&app, &admin, loan_id, "100.00", bad)
            .await
            .assert_invalid_fields(&["valueDate"]);
    }
    assert_eq!(app.count("payments").await, 0, "nothing was recorded");

    let earliest = pay_on(&app, &admin, loan_id, "100.00", "2026-01-15").await;
    earliest.assert_status(201);
    assert_posted(&earliest.body, "2026-01-15");
    assert_eq!(portions(&earliest.body), ("0.00", "100.00", "0.00"));
    assert_eq!(earliest.body["recordedBy"], json!(admin.id));

    // Without a value date it counts from today, whoever records it.
    let today = app.pay(&manager, loan_id, json!("50.00"), None).await;
    today.assert_status(201);
    assert_posted(&today.body, "2026-02-10");
    let own = app.pay(&borrower, loan_id, json!("50.00"), None).await;
    own.assert_status(201);
    assert_posted(&own.body, "2026-02-10");
    // #1's interest (100.00) was paid by the first; these go to principal.
    assert_eq!(portions(&own.body), ("50.00", "0.00", "0.00"));
    assert_eq!(loan(&app, &borrower, loan_id).await["totalPaid"], "200.00");
}

#[tokio::test]
async fn the_earliest_value_date_is_the_first_periods_start_clamped_to_month_end() {
    let app = TestApp::spawn().await;
    let borrower = app.register("migrant").await;
    let admin = app.admin().await;
    // 1200.00 at 0 % over 12 months, 100.00 each, first due 2025-12-31:
    // the first period starts 2025-11-31 → clamped to 2025-11-30, earlier
    // than the approval date (2026-01-15).
    let loan_id = app.apply(&borrower, "1200.00", 12).await;
    let approved = app
        .approve(
            &admin,
            loan_id,
            Some(json!({ "annualInterestRate": "0", "firstDueDate": "2025-12-31" })),
        )
        .await;
    // #1 was due 2025-12-31, unpaid: 5 % of 100.00 = 5.00.
    assert_eq!(approved["status"], "OVERDUE");
    assert_eq!(approved["penaltiesOutstanding"], "5.00");
    assert_eq!(installment(&approved, 2)["dueDate"], "2026-01-31");
    assert_eq!(installment(&approved, 3)["dueDate"], "2026-02-28");

    pay_on(&app, &admin, loan_id, "100.00", "2025-11-29")
        .await
        .assert_invalid_fields(&["valueDate"]);
    let earliest = pay_on(&app, &admin, loan_id, "100.00", "2025-11-30").await;
    earliest.assert_status(201);
    assert_posted(&earliest.body, "2025-11-30");
    assert_eq!(portions(&earliest.body), ("100.00", "0.00", "0.00"));
    // #1 paid before it fell due: the fee goes, #2 is not due until 2026-01-31.
    assert_eq!(earliest.body["loanStatus"], "APPROVED");
    assert_eq!(earliest.body["loanOutstanding"], "1100.00");
    let waived = app.audit_rows("PENALTY_WAIVED").await;
    assert_eq!(waived.len(), 1);
    assert_eq!(
        waived[0].details,
        json!({ "installmentNumber": 1, "previous": "5.00", "penalty": "0.00" })
    );
}

#[tokio::test]
async fn the_excess_policy_is_one_of_three_and_next_installments_by_default() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    for excess in [
        json!("SETTLEMENT"),
        json!("next_installments"),
        json!("SIDEWAYS"),
        json!(7),
    ] {
        pay_with(
            &app,
            &borrower,
            loan_id,
            json!({ "amount": "100.00", "excess": excess }),
        )
        .await
        .assert_invalid_fields(&["excess"]);
    }
    assert_eq!(app.count("payments").await, 0, "nothing was recorded");

    let explicit = pay_with(
        &app,
        &borrower,
        loan_id,
        json!({ "amount": "1000.00", "excess": "NEXT_INSTALLMENTS" }),
    )
    .await;
    explicit.assert_status(201);
    assert_posted(&explicit.body, "2026-01-15");
    // #1 in full (888.49), then 92.12 interest and 19.39 principal of #2.
    assert_eq!(portions(&explicit.body), ("807.88", "192.12", "0.00"));
    let by_default = app.pay(&borrower, loan_id, json!("100.00"), None).await;
    by_default.assert_status(201);
    assert_posted(&by_default.body, "2026-01-15");
    assert_eq!(loan(&app, &admin, loan_id).await["totalPaid"], "1100.00");
}

#[tokio::test]
async fn a_backdated_payment_may_not_pay_more_than_the_replay_says_is_owed() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    app.run_job(&admin, "overdue-check", "2026-02-16").await;
    // Today the loan owes 10661.86 + 44.42 = 10706.28; but paid on
    // 2026-02-15 there is no fee, so only 10661.86 was ever owed.
    pay_on(&app, &admin, loan_id, "10706.28", "2026-02-15")
        .await
        .assert_invalid_fields(&["amount"]);
    assert_eq!(app.count("payments").await, 0);
    assert!(app.audit_rows("PENALTY_WAIVED").await.is_empty());
    assert!(app.audit_rows("PAYMENT_RECORDED").await.is_empty());
    let unchanged = loan(&app, &admin, loan_id).await;
    assert_eq!(unchanged["penaltiesOutstanding"], "44.42");
    assert_eq!(unchanged["outstanding"], "10706.28");

    let payoff = pay_on(&app, &admin, loan_id, "10661.86", "2026-02-15").await;
    payoff.assert_status(201);
    assert_eq!(portions(&payoff.body), ("10000.00", "661.86", "0.00"));
    assert_eq!(payoff.body["loanStatus"], "PAID");
    assert_eq!(payoff.body["loanOutstanding"], "0.00");
    let paid = loan(&app, &borrower, loan_id).await;
    assert_eq!(paid["status"], "PAID");
    assert_eq!(paid["totalPaid"], "10661.86");
    assert_eq!(paid["outstanding"], "0.00");
    assert_eq!(paid["penaltiesOutstanding"], "0.00");
    assert_eq!(installment(&paid, 1)["penalty"], "0.00");
    assert_eq!(app.audit_rows("PENALTY_WAIVED").await.len(), 1);
    assert_eq!(app.audit_rows("LOAN_PAID").await.len(), 1);
    assert_eq!(notified(&app, &borrower, "LOAN_PAID").await, 1);
    // A PAID loan takes nothing more, backdated or not.
    pay_on(&app, &admin, loan_id, "1.00", "2026-02-15")
        .await
        .assert_problem(409);
}

#[tokio::test]
async fn the_history_shows_current_portions_after_a_backdated_payment_reallocates() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    app.clock.set(moment("2026-02-10"));
    let later = app.pay(&borrower, loan_id, json!("888.49"), None).await;
    later.assert_status(201);
    assert_eq!(portions(&later.body), ("788.49", "100.00", "0.00"));
    let later_id = id_of(&later.body);

    // A 500.00 that arrived on 2026-02-01 is recorded after it. Replayed in
    // value-date order: the 500.00 pays #1's interest 100.00 and principal
    // 400.00; then the 888.49 pays #1's remaining principal 388.49, #2's
    // interest 92.12 and 888.49 − 388.49 − 92.12 = 407.88 of #2's principal.
    let earlier = pay_on(&app, &admin, loan_id, "500.00", "2026-02-01").await;
    earlier.assert_status(201);
    assert_posted(&earlier.body, "2026-02-01");
    assert_eq!(portions(&earlier.body), ("400.00", "100.00", "0.00"));
    // 10661.86 − 888.49 − 500.00 = 9273.37.
    assert_eq!(earlier.body["loanOutstanding"], "9273.37");
    assert_eq!(earlier.body["loanStatus"], "APPROVED");

    let payments = history(&app, &admin, &borrower, loan_id).await;
    assert_eq!(payments.len(), 2);
    let reallocated = find_payment(&payments, &later_id);
    // 388.49 + 407.88 = 796.37 of principal, 92.12 of interest.
    assert_eq!(portions(reallocated), ("796.37", "92.12", "0.00"));
    assert_posted(reallocated, "2026-02-10");
    // What the loan was when it was recorded does not change.
    assert_eq!(reallocated["loanOutstanding"], "9773.37");
    assert_eq!(reallocated["loanStatus"], "APPROVED");
    let backdated = find_payment(&payments, &id_of(&earlier.body));
    assert_eq!(portions(backdated), ("400.00", "100.00", "0.00"));
    // The borrower sees the same.
    let own = history(&app, &borrower, &borrower, loan_id).await;
    assert_eq!(
        portions(find_payment(&own, &later_id)),
        ("796.37", "92.12", "0.00")
    );

    let current = loan(&app, &borrower, loan_id).await;
    assert_eq!(current["totalPaid"], "1388.49");
    assert_eq!(current["outstanding"], "9273.37");
    assert_eq!(installment(&current, 1)["status"], "PAID");
    assert_eq!(installment(&current, 1)["amountPaid"], "888.49");
    // 92.12 + 407.88.
    assert_eq!(installment(&current, 2)["status"], "PARTIAL");
    assert_eq!(installment(&current, 2)["amountPaid"], "500.00");
}

#[tokio::test]
async fn an_idempotent_replay_returns_the_original_body_after_a_reversal() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    let first = app
        .pay(&borrower, loan_id, json!("100.00"), Some("order-7"))
        .await;
    first.assert_status(201);
    assert_posted(&first.body, "2026-01-15");
    let payment_id = id_of(&first.body);
    reverse(&app, &admin, &payment_id, "duplicate transfer")
        .await
        .assert_status(200);

    let again = app
        .pay(&borrower, loan_id, json!("100.00"), Some("order-7"))
        .await;
    again.assert_status(201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.text, first.text, "byte for byte the original answer");
    assert_eq!(again.body["status"], "POSTED");
    assert_eq!(app.count("payments").await, 1, "nothing new recorded");

    let current = loan(&app, &borrower, loan_id).await;
    assert_eq!(current["totalPaid"], "0.00");
    assert_eq!(current["outstanding"], "10661.86");
    let payments = history(&app, &admin, &borrower, loan_id).await;
    assert_eq!(find_payment(&payments, &payment_id)["status"], "REVERSED");
}

// ---------------------------------------------------------------------------
// Bringing loans up to date
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_loan_read_shows_today_without_writing_and_lists_show_the_stored_state() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    // Read (and cached) on the due date itself: nothing is late yet.
    app.clock.set(moment("2026-02-15"));
    let on_due_date = loan(&app, &borrower, loan_id).await;
    assert_eq!(on_due_date["status"], "APPROVED");
    assert_eq!(installment(&on_due_date, 1)["status"], "PENDING");
    // The next day the cached copy is not served: it was for another day.
    app.clock.set(moment("2026-02-16"));
    let audit_before = app.count("audit_logs").await;
    let notifications_before = app.count("notifications").await;

    for reader in [&borrower, &admin] {
        let today = loan(&app, reader, loan_id).await;
        assert_eq!(today["status"], "OVERDUE");
        assert_eq!(today["penaltiesOutstanding"], "44.42");
        // 10661.86 + 44.42.
        assert_eq!(today["totalPayable"], "10661.86");
        assert_eq!(today["outstanding"], "10706.28");
        assert_eq!(installment(&today, 1)["status"], "OVERDUE");
        assert_eq!(installment(&today, 1)["penalty"], "44.42");
        assert_eq!(installment(&today, 1)["amountDue"], "932.91");
        assert_eq!(installment(&today, 2)["status"], "PENDING");
        assert_eq!(installment(&today, 2)["penalty"], "0.00");
    }
    let stored = listed_loan(&app, &admin, loan_id).await;
    assert_eq!(stored["status"], "APPROVED", "lists show the stored state");
    assert_eq!(stored["penaltiesOutstanding"], "0.00");

    assert_eq!(
        app.count("audit_logs").await,
        audit_before,
        "a read writes nothing"
    );
    assert_eq!(app.count("notifications").await, notifications_before);
    assert!(app.audit_rows("PENALTY_APPLIED").await.is_empty());

    // The job stores what the read showed.
    let report = app.run_job(&admin, "overdue-check", "2026-02-16").await;
    assert_eq!(report["penaltiesApplied"], 1);
    assert_eq!(
        listed_loan(&app, &admin, loan_id).await["status"],
        "OVERDUE"
    );
    assert_eq!(app.audit_rows("PENALTY_APPLIED").await.len(), 1);
    assert_eq!(notified(&app, &borrower, "PENALTY_APPLIED").await, 1);
    assert_eq!(
        loan(&app, &borrower, loan_id).await["outstanding"],
        "10706.28"
    );
}

#[tokio::test]
async fn an_operation_brings_the_loan_up_to_date_first_and_notifies_once() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    app.clock.set(moment("2026-02-16"));
    assert_eq!(
        listed_loan(&app, &admin, loan_id).await["status"],
        "APPROVED"
    );

    // The 44.42 fee is charged first, then paid first.
    let response = app.pay(&borrower, loan_id, json!("10.00"), None).await;
    response.assert_status(201);
    assert_eq!(portions(&response.body), ("0.00", "0.00", "10.00"));
    assert_eq!(response.body["loanStatus"], "OVERDUE");
    // 10706.28 − 10.00.
    assert_eq!(response.body["loanOutstanding"], "10696.28");

    let stored = listed_loan(&app, &admin, loan_id).await;
    assert_eq!(stored["status"], "OVERDUE", "the operation stored it");
    // 44.42 − 10.00.
    assert_eq!(stored["penaltiesOutstanding"], "34.42");
    let current = loan(&app, &borrower, loan_id).await;
    assert_eq!(installment(&current, 1)["penalty"], "44.42");
    assert_eq!(installment(&current, 1)["amountPaid"], "10.00");
    assert_eq!(installment(&current, 1)["status"], "OVERDUE");

    let applied = app.audit_rows("PENALTY_APPLIED").await;
    assert_eq!(applied.len(), 1);
    assert_eq!(
        applied[0].details,
        json!({ "installmentNumber": 1, "previous": "0.00", "penalty": "44.42" })
    );
    let counts = async || {
        [
            notified(&app, &borrower, "PAYMENT_OVERDUE").await,
            notified(&app, &borrower, "PENALTY_APPLIED").await,
            notified(&app, &borrower, "PAYMENT_RECEIVED").await,
        ]
    };
    assert_eq!(counts().await, [1, 1, 1]);

    // The job finds nothing left to do for that day.
    let report = app.run_job(&admin, "overdue-check", "2026-02-16").await;
    assert_eq!(report["penaltiesApplied"], 0);
    assert_eq!(report["notificationsWritten"], 0);
    assert_eq!(counts().await, [1, 1, 1]);
    assert_eq!(app.audit_rows("PENALTY_APPLIED").await.len(), 1);
    assert_eq!(
        loan(&app, &admin, loan_id).await["penaltiesOutstanding"],
        "34.42"
    );
}

#[tokio::test]
async fn a_migrated_loan_is_overdue_at_approval_and_its_earlier_payments_waive_fees() {
    let app = TestApp::spawn().await;
    let borrower = app.register("migrant").await;
    let admin = app.admin().await;
    // The golden terms, but first due 2025-11-15, approved 2026-01-15:
    // #1 due 2025-11-15 and #2 due 2025-12-15 are past, #3 is due today.
    let loan_id = app.apply(&borrower, "10000.00", 12).await;
    let approved = app
        .approve(
            &admin,
            loan_id,
            Some(json!({ "annualInterestRate": "12", "firstDueDate": "2025-11-15" })),
        )
        .await;
    assert_eq!(approved["status"], "OVERDUE");
    assert_eq!(approved["installmentAmount"], "888.49");
    assert_eq!(approved["totalPayable"], "10661.86");
    // 5 % of 888.49 = 44.4245 → 44.42 on #1 and on #2: 88.84.
    assert_eq!(approved["penaltiesOutstanding"], "88.84");
    // 10661.86 + 88.84.
    assert_eq!(approved["outstanding"], "10750.70");
    for (number, due) in [(1, "2025-11-15"), (2, "2025-12-15")] {
        assert_eq!(installment(&approved, number)["dueDate"], due);
        assert_eq!(installment(&approved, number)["status"], "OVERDUE");
        assert_eq!(installment(&approved, number)["penalty"], "44.42");
    }
    // Due today is not overdue yet.
    assert_eq!(installment(&approved, 3)["dueDate"], "2026-01-15");
    assert_eq!(installment(&approved, 3)["status"], "PENDING");
    assert_eq!(installment(&approved, 3)["penalty"], "0.00");
    assert_eq!(app.audit_rows("PENALTY_APPLIED").await.len(), 2);
    assert_eq!(notified(&app, &borrower, "LOAN_APPROVED").await, 1);
    assert_eq!(notified(&app, &borrower, "PAYMENT_OVERDUE").await, 2);
    assert_eq!(notified(&app, &borrower, "PENALTY_APPLIED").await, 2);

    // The earliest value date is 2025-10-15 (first due minus one month,
    // before the approval date).
    pay_on(&app, &admin, loan_id, "888.49", "2025-10-14")
        .await
        .assert_invalid_fields(&["valueDate"]);

    // The borrower's earlier payments, with their real value dates.
    let november = pay_on(&app, &admin, loan_id, "888.49", "2025-11-15").await;
    november.assert_status(201);
    assert_eq!(portions(&november.body), ("788.49", "100.00", "0.00"));
    assert_eq!(november.body["loanStatus"], "OVERDUE", "#2 is still unpaid");
    // 10750.70 − 888.49 − 44.42 (#1's fee waived) = 9817.79.
    assert_eq!(november.body["loanOutstanding"], "9817.79");
    let waived = app.audit_rows("PENALTY_WAIVED").await;
    assert_eq!(waived.len(), 1);
    assert_eq!(
        waived[0].details,
        json!({ "installmentNumber": 1, "previous": "44.42", "penalty": "0.00" })
    );

    let december = pay_on(&app, &admin, loan_id, "888.49", "2025-12-15").await;
    december.assert_status(201);
    assert_eq!(portions(&december.body), ("796.37", "92.12", "0.00"));
    assert_eq!(december.body["loanStatus"], "APPROVED");
    // 9817.79 − 888.49 − 44.42 = 8884.88 = 10661.86 − 2 × 888.49.
    assert_eq!(december.body["loanOutstanding"], "8884.88");
    let waived = app.audit_rows("PENALTY_WAIVED").await;
    assert_eq!(waived.len(), 2);
    assert_eq!(
        waived[1].details,
        json!({ "installmentNumber": 2, "previous": "44.42", "penalty": "0.00" })
    );

    // Exactly the earliest day is accepted: 10.00 on 2025-10-15 is first in
    // value-date order and pays 10.00 of #1's interest.
    let earliest = pay_on(&app, &admin, loan_id, "10.00", "2025-10-15").await;
    earliest.assert_status(201);
    assert_eq!(portions(&earliest.body), ("0.00", "10.00", "0.00"));
    assert_eq!(earliest.body["loanOutstanding"], "8874.88");

    let current = loan(&app, &borrower, loan_id).await;
    assert_eq!(current["status"], "APPROVED");
    assert_eq!(current["penaltiesOutstanding"], "0.00");
    // 888.49 + 888.49 + 10.00.
    assert_eq!(current["totalPaid"], "1786.98");
    assert_eq!(current["outstanding"], "8874.88");
    assert_eq!(installment(&current, 1)["status"], "PAID");
    assert_eq!(installment(&current, 2)["status"], "PAID");
    // The 10.00 pushed 10.00 of each later payment on to #3's interest.
    assert_eq!(installment(&current, 3)["status"], "PARTIAL");
    assert_eq!(installment(&current, 3)["amountPaid"], "10.00");
    // Fees notified at approval are not withdrawn, nor sent again.
    assert_eq!(notified(&app, &borrower, "PENALTY_APPLIED").await, 2);
}

#[tokio::test]
async fn a_job_cannot_run_ahead_of_the_calendar() {
    let app = TestApp::spawn().await;
    let (_, admin, loan_id) = app.golden_loan().await;
    app.clock.set(moment("2026-02-16"));
    let runs_before = app.count("job_runs").await;

    let ahead = app
        .post(
            "/admin/jobs/overdue-check/run",
            Some(&admin.token),
            json!({ "asOf": "2026-02-17" }),
        )
        .await;
    ahead.assert_invalid_fields(&["asOf"]);
    assert_eq!(
        ahead.body["errors"][0]["message"],
        "must not be after today (2026-02-16)"
    );
    assert_eq!(app.count("job_runs").await, runs_before, "nothing ran");
    assert!(app.audit_rows("PENALTY_APPLIED").await.is_empty());
    assert_eq!(
        listed_loan(&app, &admin, loan_id).await["status"],
        "APPROVED"
    );

    // A past day only narrows what is looked at: #1's fee day is
    // 2026-02-16, after 2026-02-15.
    let yesterday = app.run_job(&admin, "overdue-check", "2026-02-15").await;
    assert_eq!(yesterday["asOf"], "2026-02-15");
    assert_eq!(yesterday["penaltiesApplied"], 0);
    assert!(app.audit_rows("PENALTY_APPLIED").await.is_empty());

    let today = app.run_job(&admin, "overdue-check", "2026-02-16").await;
    assert_eq!(today["penaltiesApplied"], 1);
    assert_eq!(
        listed_loan(&app, &admin, loan_id).await["status"],
        "OVERDUE"
    );
}

// ---------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_payments_a_backdated_payment_a_reversal_and_the_job_keep_the_books_exact() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    let manager = app.manager().await;
    // Past the first due date, and no job has run.
    app.clock.set(moment("2026-02-20"));
    let first = app.pay(&borrower, loan_id, json!("200.00"), None).await;
    first.assert_status(201);
    // The 44.42 fee first, then #1's interest 100.00, then 55.58 principal.
    assert_eq!(portions(&first.body), ("55.58", "100.00", "44.42"));
    let first_id = id_of(&first.body);

    let spawn = |request: Request<Body>| {
        let router = app.router.clone();
        tokio::spawn(async move { send_to(&router, request).await })
    };
    let payments: Vec<_> = (0..6)
        .map(|_| {
            spawn(payment_request(
                &borrower,
                loan_id,
                &json!({ "amount": "50.00" }),
            ))
        })
        .collect();
    let backdated = spawn(payment_request(
        &manager,
        loan_id,
        &json!({ "amount": "300.00", "valueDate": "2026-02-14" }),
    ));
    let reversal = spawn(reverse_request(
        &admin,
        &first_id,
        &json!({ "reason": "returned by the bank" }),
    ));
    let job = spawn(post_request(
        "/admin/jobs/overdue-check/run",
        &admin.token,
        &json!({ "asOf": "2026-02-20" }),
        None,
    ));

    let mut payment_responses = Vec::new();
    for handle in payments {
        payment_responses.push(handle.await.expect("payment task"));
    }
    let backdated = backdated.await.expect("backdated task");
    payment_responses.push(backdated);
    let reversal = reversal.await.expect("reversal task");
    let job = job.await.expect("job task");

    for response in payment_responses.iter().chain([&reversal, &job]) {
        assert!(
            response.status.is_success() || response.status.is_client_error(),
            "never a 5xx: {} {}",
            response.status,
            response.text
        );
    }

    // The history holds exactly the accepted payments, plus the first
    // unless its reversal was accepted.
    let payments = history(&app, &admin, &borrower, loan_id).await;
    let mut expected_posted: Vec<String> = payment_responses
        .iter()
        .filter(|r| r.status == 201)
        .map(|r| id_of(&r.body))
        .collect();
    if reversal.status == 200 {
        assert_eq!(reversal.body["status"], "REVERSED");
        assert_eq!(find_payment(&payments, &first_id)["status"], "REVERSED");
    } else {
        expected_posted.push(first_id.clone());
    }
    let mut posted: Vec<String> = payments
        .iter()
        .filter(|p| p["status"] == "POSTED")
        .map(id_of)
        .collect();
    posted.sort();
    expected_posted.sort();
    assert_eq!(posted, expected_posted, "no payment lost or doubled");
    for reversed in payments.iter().filter(|p| p["status"] == "REVERSED") {
        assert_eq!(portions(reversed), ("0.00", "0.00", "0.00"));
    }

    let posted_total: i64 = payments
        .iter()
        .filter(|p| p["status"] == "POSTED")
        .map(|p| cents(p["amount"].as_str().expect("amount")))
        .sum();
    let portions_total: i64 = payments
        .iter()
        .filter(|p| p["status"] == "POSTED")
        .map(|p| {
            let (principal, interest, penalty) = portions(p);
            cents(principal) + cents(interest) + cents(penalty)
        })
        .sum();
    assert_eq!(
        portions_total, posted_total,
        "each payment is fully allocated"
    );

    let current = loan(&app, &admin, loan_id).await;
    let money = |field: &str| cents(current[field].as_str().expect("money"));
    assert_eq!(
        money("totalPaid"),
        posted_total,
        "totalPaid = Σ posted payments"
    );
    let fees: i64 = current["schedule"]
        .as_array()
        .expect("schedule")
        .iter()
        .map(|i| cents(i["penalty"].as_str().expect("penalty")))
        .sum();
    assert_eq!(
        money("outstanding"),
        money("totalPayable") + fees - money("totalPaid"),
        "outstanding = total payable + fees charged − total paid"
    );

    let differences = app
        .verify_books(loan_id)
        .await
        .expect("the books can be checked");
    assert!(
        differences.is_empty(),
        "stored rows differ from a fresh replay: {differences:#?}"
    );

    // However the operations interleaved, each notice went out once.
    assert_eq!(notified(&app, &borrower, "PAYMENT_OVERDUE").await, 1);
    assert_eq!(notified(&app, &borrower, "PENALTY_APPLIED").await, 1);
    // The journal is in step with the loans after the race too.
    crate::books::assert_books_agree(&app).await;
}

/// A UUID as a SQL literal of the backend under test.
pub(crate) fn uuid_literal(id: Uuid) -> String {
    if crate::support::postgres_configured() {
        format!("'{id}'")
    } else {
        format!("X'{}'", id.simple())
    }
}

/// A database the previous version wrote (two migrations: the initial
/// schema and the user-change notices): a 300.00 loan at 0 % over three
/// months, first due 2026-01-10, whose first installment was paid with
/// 100.00 on the evening of 2026-01-05 in New York (already 2026-01-06 in
/// UTC), and the notices that went with it.
pub(crate) fn earlier_version_rows(borrower: Uuid, loan: Uuid, payment: Uuid) -> Vec<String> {
    let installments: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let at = "'2026-01-06T02:00:00+00:00'";
    let mut rows = vec![
        format!(
            "INSERT INTO users (id, email, username, username_key, password_hash, role) \
             VALUES ({}, 'old@example.com', 'old', 'old', 'not-a-hash', 'USER')",
            uuid_literal(borrower)
        ),
        format!(
            "INSERT INTO loans (id, user_id, status, currency, principal_minor, annual_interest_rate, \
             term_months, installment_minor, total_payable_minor, total_paid_minor, next_due_date, \
             first_due_date, approved_at) VALUES ({}, {}, 'APPROVED', 'USD', 30000, '0', 3, 10000, \
             30000, 10000, '2026-02-10', '2026-01-10', '2025-12-10T09:00:00+00:00')",
            uuid_literal(loan),
            uuid_literal(borrower)
        ),
    ];
    for (index, (id, due)) in installments
        .iter()
        .zip(["2026-01-10", "2026-02-10", "2026-03-10"])
        .enumerate()
    {
        let (paid, status, paid_at) = if index == 0 {
            (10000, "PAID", at)
        } else {
            (0, "PENDING", "NULL")
        };
        rows.push(format!(
            "INSERT INTO installments (id, loan_id, user_id, number, due_date, principal_minor, \
             interest_minor, principal_paid_minor, status, paid_at) \
             VALUES ({}, {}, {}, {}, '{due}', 10000, 0, {paid}, '{status}', {paid_at})",
            uuid_literal(*id),
            uuid_literal(loan),
            uuid_literal(borrower),
            index + 1
        ));
    }
    rows.push(format!(
        "INSERT INTO payments (id, loan_id, user_id, recorded_by, amount_minor, principal_minor, \
         interest_minor, penalty_minor, currency, loan_status_after, loan_outstanding_after_minor, \
         paid_at, created_at) VALUES ({p}, {l}, {u}, {u}, 10000, 10000, 0, 0, 'USD', 'APPROVED', \
         20000, {at}, {at})",
        p = uuid_literal(payment),
        l = uuid_literal(loan),
        u = uuid_literal(borrower),
    ));
    rows.push(format!(
        "INSERT INTO payment_allocations (payment_id, installment_id, principal_minor, \
         interest_minor, penalty_minor) VALUES ({}, {}, 10000, 0, 0)",
        uuid_literal(payment),
        uuid_literal(installments[0])
    ));
    rows.push(format!(
        "INSERT INTO notifications (id, user_id, loan_id, kind, title, message, read_at, created_at) \
         VALUES ({}, {}, {}, 'PAYMENT_RECEIVED', 'Payment received', 'We received 100.00 USD.', \
         {at}, {at})",
        uuid_literal(Uuid::now_v7()),
        uuid_literal(borrower),
        uuid_literal(loan)
    ));
    rows
}

#[tokio::test]
async fn an_existing_database_upgrades_in_place() {
    let (borrower_id, loan_id, payment_id) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let app = TestApp::builder()
        .env("TIMEZONE", "America/New_York")
        .upgrading_from(2, earlier_version_rows(borrower_id, loan_id, payment_id))
        .build()
        .await;
    let admin = app.admin().await;

    // The old payment is posted, valued on the day it was recorded in the
    // service's time zone, with its portions as recorded.
    let payments = app
        .get(&format!("/payments/user/{borrower_id}"), &admin.token)
        .await;
    payments.assert_status(200);
    let old = &payments.body["items"][0];
    assert_eq!(old["id"], json!(payment_id));
    assert_eq!(old["status"], "POSTED");
    assert_eq!(old["valueDate"], "2026-01-05");
    assert_eq!(old["excess"], "NEXT_INSTALLMENTS");
    assert_eq!(old["reversedAt"], Value::Null);
    assert_eq!(portions(old), ("100.00", "0.00", "0.00"));

    // The approved schedule was rebuilt from the installments, and the
    // stored state is what a replay from it gives.
    assert_eq!(app.count("approved_installments").await, 3);
    // Each remembers its installment row (a prepayment that removes one
    // and a replay that brings it back keep its id).
    assert_eq!(
        app.count(
            "approved_installments a JOIN installments i \
             ON i.id = a.installment_id AND i.loan_id = a.loan_id AND i.number = a.number"
        )
        .await,
        3
    );
    assert_eq!(
        app.verify_books(loan_id).await.expect("books"),
        Vec::<String>::new()
    );
    // The notification rebuilt with its table keeps its fields.
    let kept = app.notifications(borrower_id).await;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].message, "We received 100.00 USD.");
    assert!(kept[0].read_at.is_some());

    // The upgraded loan is serviced like any other: reversing the old
    // payment leaves installment #1 (due 2026-01-10) unpaid past its fee
    // day, so it carries 5 % of 100.00 = 5.00, and the borrower is told.
    let reversed = reverse(&app, &admin, &payment_id.to_string(), "cheque bounced").await;
    reversed.assert_status(200);
    assert_eq!(reversed.body["status"], "REVERSED");
    let after = loan(&app, &admin, loan_id).await;
    assert_eq!(after["status"], "OVERDUE");
    assert_eq!(after["totalPaid"], "0.00");
    assert_eq!(after["outstanding"], "305.00");
    assert_eq!(installment(&after, 1)["penalty"], "5.00");
    assert_eq!(
        app.notification_kinds(borrower_id).await,
        [
            "PAYMENT_RECEIVED",
            "PAYMENT_OVERDUE",
            "PENALTY_APPLIED",
            "PAYMENT_REVERSED"
        ]
    );
    assert_eq!(
        app.verify_books(loan_id).await.expect("books"),
        Vec::<String>::new()
    );
}
