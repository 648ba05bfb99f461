//! § Four eyes and § Write-off: decisions that take two people, and losses
//! booked honestly.
//!
//! The golden loan (support.rs): 10 000.00 at 12 % over 12 months, approved
//! 2026-01-15, first due 2026-02-15, 888.49 a month; #1 unpaid past its due
//! date carries a 44.42 fee.

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::books::{assert_books_agree, journal, trial_balance};
use crate::servicing::{id_of, moment, pay_with, post_request, reverse};
use crate::support::{TestApp, TestResponse, TestUser, send_to};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// An app whose approvals of 5 000.00 or more, and reversals, need four
/// eyes.
async fn four_eyes_app() -> TestApp {
    TestApp::builder()
        .env("FOUR_EYES_APPROVAL_AMOUNT", "5000.00")
        .env("FOUR_EYES_REVERSALS", "true")
        .build()
        .await
}

/// A borrower, two ADMINs (the first asks, the second confirms) and a
/// MANAGER.
struct Staffed {
    borrower: TestUser,
    first: TestUser,
    second: TestUser,
    manager: TestUser,
}

async fn staffed(app: &TestApp) -> Staffed {
    Staffed {
        borrower: app.register("borrower").await,
        first: app.admin().await,
        second: app.user_with_role("second", "ADMIN").await,
        manager: app.manager().await,
    }
}

async fn confirm(app: &TestApp, admin: &TestUser, decision: &str) -> TestResponse {
    app.post(
        &format!("/decisions/{decision}/confirm"),
        Some(&admin.token),
        json!({}),
    )
    .await
}

async fn reject_decision(
    app: &TestApp,
    user: &TestUser,
    decision: &str,
    reason: &str,
) -> TestResponse {
    app.post(
        &format!("/decisions/{decision}/reject"),
        Some(&user.token),
        json!({ "reason": reason }),
    )
    .await
}

fn decision_id(response: &TestResponse) -> String {
    response.body["id"]
        .as_str()
        .expect("decision id")
        .to_owned()
}

async fn write_off(app: &TestApp, staff: &TestUser, loan_id: Uuid, reason: &str) -> TestResponse {
    app.post(
        &format!("/loans/{loan_id}/write-off"),
        Some(&staff.token),
        json!({ "reason": reason }),
    )
    .await
}

/// The golden loan, left unpaid until 2026-06-20: OVERDUE, four late fees
/// of 44.42 charged (#1 to #4), the clock on 2026-06-20.
async fn overdue_loan(app: &TestApp) -> (TestUser, TestUser, Uuid) {
    let (borrower, admin, loan_id) = app.golden_loan().await;
    app.clock.set(moment("2026-06-20"));
    app.run_job(&admin, "overdue-check", "2026-06-20").await;
    let loan = app.loan_body(&borrower.token, &loan_id).await;
    assert_eq!(loan["status"], "OVERDUE");
    (borrower, admin, loan_id)
}

// ---------------------------------------------------------------------------
// Four eyes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_large_approval_takes_a_second_admin() {
    let app = four_eyes_app().await;
    let Staffed {
        borrower,
        first,
        second,
        manager,
    } = staffed(&app).await;
    let loan_id = app.apply(&borrower, "10000.00", 12).await;
    let terms = json!({ "annualInterestRate": "12", "firstDueDate": "2026-02-15" });

    let asked = app
        .patch(
            &format!("/loans/{loan_id}/approve"),
            &first.token,
            Some(terms.clone()),
        )
        .await;
    asked.assert_status(202);
    assert_eq!(asked.body["action"], "APPROVE_LOAN");
    assert_eq!(asked.body["status"], "PENDING");
    assert_eq!(asked.body["loanId"], json!(loan_id));
    assert_eq!(asked.body["paymentId"], Value::Null);
    assert_eq!(asked.body["request"], terms);
    assert_eq!(asked.body["requestedBy"], json!(first.id));
    for field in ["decidedBy", "decidedAt", "reason"] {
        assert_eq!(asked.body[field], Value::Null, "{field}");
    }
    let decision = decision_id(&asked);
    // Nothing happened to the loan, but the wait shows on it.
    let loan = app.loan_body(&borrower.token, &loan_id).await;
    assert_eq!(loan["status"], "PENDING");
    assert_eq!(loan["pendingDecisions"][0]["id"], json!(decision));
    assert_eq!(loan["pendingDecisions"][0]["action"], "APPROVE_LOAN");
    assert_eq!(loan["pendingDecisions"][0]["requestedBy"], json!(first.id));
    let audit = app.audit_rows("DECISION_REQUESTED").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].entity_id, Some(loan_id));
    assert_eq!(
        audit[0].details,
        json!({ "decisionId": decision, "action": "APPROVE_LOAN" })
    );

    // One request per thing at a time, whatever its body.
    app.patch(&format!("/loans/{loan_id}/approve"), &second.token, None)
        .await
        .assert_problem(409);
    // The requester, and a MANAGER, cannot confirm it.
    confirm(&app, &first, &decision).await.assert_problem(403);
    confirm(&app, &manager, &decision).await.assert_problem(403);

    let confirmed = confirm(&app, &second, &decision).await;
    confirmed.assert_status(200);
    assert_eq!(confirmed.body["status"], "APPROVED");
    assert_eq!(confirmed.body["approvedBy"], json!(second.id));
    assert_eq!(confirmed.body["installmentAmount"], "888.49");
    assert_eq!(
        confirmed.body["schedule"].as_array().map(Vec::len),
        Some(12)
    );
    let shown = app
        .get(&format!("/decisions/{decision}"), &manager.token)
        .await;
    shown.assert_status(200);
    assert_eq!(shown.body["status"], "CONFIRMED");
    assert_eq!(shown.body["decidedBy"], json!(second.id));
    let approved = app.audit_rows("LOAN_APPROVED").await;
    assert_eq!(approved[0].actor_id, Some(second.id));
    assert_eq!(approved[0].details["requestedBy"], json!(first.id));
    assert_eq!(approved[0].details["decisionId"], json!(decision));
    assert_eq!(app.audit_rows("DECISION_CONFIRMED").await.len(), 1);
    let loan = app.loan_body(&borrower.token, &loan_id).await;
    assert_eq!(loan["pendingDecisions"], json!([]));
    // Once is all.
    confirm(&app, &second, &decision).await.assert_problem(409);
    assert_books_agree(&app).await;

    // Below the threshold: approved at once.
    let small = app.apply(&borrower, "4999.99", 6).await;
    app.approve(&first, small, None).await;
    // At it: a decision.
    let at = app.apply(&borrower, "5000.00", 6).await;
    app.patch(&format!("/loans/{at}/approve"), &first.token, None)
        .await
        .assert_status(202);
    let list = app.get("/decisions?status=PENDING", &manager.token).await;
    list.assert_status(200);
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(list.body["items"][0]["request"], json!({}));
}

#[tokio::test]
async fn a_confirmation_the_request_now_refuses_leaves_the_decision_pending() {
    let app = four_eyes_app().await;
    let Staffed {
        borrower,
        first,
        second,
        manager,
    } = staffed(&app).await;
    let loan_id = app.apply(&borrower, "8000.00", 12).await;
    let asked = app
        .patch(&format!("/loans/{loan_id}/approve"), &first.token, None)
        .await;
    asked.assert_status(202);
    let decision = decision_id(&asked);
    // The loan can still be rejected while its approval waits.
    app.patch(
        &format!("/loans/{loan_id}/reject"),
        &manager.token,
        Some(json!({ "reason": "income not verified" })),
    )
    .await
    .assert_status(200);
    confirm(&app, &second, &decision).await.assert_problem(409);
    let shown = app
        .get(&format!("/decisions/{decision}"), &second.token)
        .await;
    assert_eq!(shown.body["status"], "PENDING");
    assert_eq!(app.audit_rows("DECISION_CONFIRMED").await.len(), 0);

    // Rejected with a reason, and kept.
    reject_decision(&app, &manager, &decision, "")
        .await
        .assert_invalid_fields(&["reason"]);
    reject_decision(&app, &borrower, &decision, "no")
        .await
        .assert_problem(403);
    let rejected = reject_decision(&app, &manager, &decision, "the loan was rejected").await;
    rejected.assert_status(200);
    assert_eq!(rejected.body["status"], "REJECTED");
    assert_eq!(rejected.body["decidedBy"], json!(manager.id));
    assert_eq!(rejected.body["reason"], "the loan was rejected");
    let audit = app.audit_rows("DECISION_REJECTED").await;
    assert_eq!(
        audit[0].details,
        json!({ "decisionId": decision, "action": "APPROVE_LOAN", "reason": "the loan was rejected" })
    );
    reject_decision(&app, &manager, &decision, "again")
        .await
        .assert_problem(409);
    confirm(&app, &second, &decision).await.assert_problem(409);
    confirm(&app, &second, &Uuid::now_v7().to_string())
        .await
        .assert_problem(404);
    let rejected_list = app.get("/decisions?status=REJECTED", &second.token).await;
    assert_eq!(
        rejected_list.body["items"].as_array().map(Vec::len),
        Some(1)
    );
    app.get("/decisions?status=MAYBE", &second.token)
        .await
        .assert_invalid_fields(&["status"]);
    app.get("/decisions", &borrower.token)
        .await
        .assert_problem(403);
}

#[tokio::test]
async fn reversals_can_need_four_eyes_and_the_requester_may_withdraw() {
    let app = four_eyes_app().await;
    let Staffed {
        borrower,
        first,
        second,
        manager,
    } = staffed(&app).await;
    // Under the threshold: approved at once.
    let loan_id = app.apply(&borrower, "1200.00", 12).await;
    app.approve(&first, loan_id, Some(json!({ "annualInterestRate": "0" })))
        .await;
    let paid = app.pay(&borrower, loan_id, json!("100.00"), None).await;
    paid.assert_status(201);
    let payment = id_of(&paid.body);

    let asked = reverse(&app, &manager, &payment, "cheque returned").await;
    asked.assert_status(202);
    assert_eq!(asked.body["action"], "REVERSE_PAYMENT");
    assert_eq!(asked.body["paymentId"], json!(payment));
    assert_eq!(
        asked.body["request"],
        json!({ "reason": "cheque returned" })
    );
    let audit = app.audit_rows("DECISION_REQUESTED").await;
    assert_eq!(audit[0].entity_type.as_deref(), Some("PAYMENT"));
    assert_eq!(
        audit[0].entity_id.map(|id| id.to_string()),
        Some(payment.clone())
    );
    // The reversal is pending on the loan too; the payment still counts.
    let loan = app.loan_body(&borrower.token, &loan_id).await;
    assert_eq!(loan["pendingDecisions"][0]["action"], "REVERSE_PAYMENT");
    assert_eq!(loan["totalPaid"], "100.00");
    reverse(&app, &first, &payment, "again")
        .await
        .assert_problem(409);

    // Withdrawn by the one who asked, then asked again and confirmed.
    let withdrawn = reject_decision(&app, &manager, &decision_id(&asked), "wrong payment").await;
    withdrawn.assert_status(200);
    let asked = reverse(&app, &manager, &payment, "cheque returned").await;
    asked.assert_status(202);
    let confirmed = confirm(&app, &second, &decision_id(&asked)).await;
    confirmed.assert_status(200);
    assert_eq!(confirmed.body["status"], "REVERSED");
    assert_eq!(confirmed.body["reversedBy"], json!(second.id));
    let reversed = app.audit_rows("PAYMENT_REVERSED").await;
    assert_eq!(reversed[0].details["requestedBy"], json!(manager.id));
    assert_eq!(
        reversed[0].details["decisionId"],
        json!(decision_id(&asked))
    );
    // Already reversed: asking again is refused at once.
    reverse(&app, &manager, &payment, "once more")
        .await
        .assert_problem(409);
    assert_books_agree(&app).await;
}

#[tokio::test]
async fn with_the_rule_turned_off_a_pending_decision_still_blocks_the_same_request() {
    let app = four_eyes_app().await;
    let Staffed {
        borrower,
        first,
        second,
        ..
    } = staffed(&app).await;
    let small = app.apply(&borrower, "1200.00", 12).await;
    app.approve(&first, small, Some(json!({ "annualInterestRate": "0" })))
        .await;
    let paid = app.pay(&borrower, small, json!("100.00"), None).await;
    let payment = id_of(&paid.body);
    let large = app.apply(&borrower, "9000.00", 12).await;
    let reversal = reverse(&app, &first, &payment, "bounced").await;
    reversal.assert_status(202);
    app.patch(&format!("/loans/{large}/approve"), &first.token, None)
        .await
        .assert_status(202);

    // Another instance, on the same database, without the rule: the
    // requests that wait are refused until their decisions are settled.
    let mut vars = app.vars.clone();
    vars.remove("FOUR_EYES_APPROVAL_AMOUNT");
    vars.remove("FOUR_EYES_REVERSALS");
    let config = loan_tracker::config::Config::from_map(&vars).expect("configuration");
    let state = loan_tracker::startup::build_state(config, std::sync::Arc::new(app.clock.clone()))
        .await
        .expect("instance without the rule");
    let without = loan_tracker::router::router(state);
    let direct_reversal = || {
        post_request(
            &format!("/payments/{payment}/reverse"),
            &second.token,
            &json!({ "reason": "bounced" }),
            None,
        )
    };
    let refused = send_to(&without, direct_reversal()).await;
    assert_eq!(refused.status.as_u16(), 409, "{}", refused.body);
    assert_eq!(
        refused.body["detail"],
        "A REVERSE_PAYMENT decision about this is already pending; confirm or reject it first."
    );
    let approval = Request::builder()
        .method("PATCH")
        .uri(format!("/loans/{large}/approve"))
        .header("authorization", format!("Bearer {}", second.token))
        .body(Body::empty())
        .expect("request");
    assert_eq!(send_to(&without, approval).await.status.as_u16(), 409);
    // The small loan's disbursement and its payment; the refusals booked
    // nothing.
    assert_eq!(app.count("journal_entries").await, 2);

    reject_decision(&app, &first, &decision_id(&reversal), "asked twice")
        .await
        .assert_status(200);
    let reversed = send_to(&without, direct_reversal()).await;
    assert_eq!(reversed.status.as_u16(), 200, "{}", reversed.body);
    assert_eq!(reversed.body["status"], "REVERSED");
    assert_books_agree(&app).await;
}

// ---------------------------------------------------------------------------
// Write-off
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_write_off_moves_the_unpaid_principal_to_losses_and_recoveries_follow() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = overdue_loan(&app).await;
    let second = app.user_with_role("second", "ADMIN").await;
    let manager = app.manager().await;
    // Paid before the write-off: #1's fee, interest and part of principal.
    app.clock.set(moment("2026-06-21"));
    let before = app.pay(&borrower, loan_id, json!("300.00"), None).await;
    before.assert_status(201);

    // Only an OVERDUE loan, only staff, always four eyes.
    write_off(&app, &borrower, loan_id, "gone")
        .await
        .assert_problem(403);
    let asked = write_off(&app, &manager, loan_id, "borrower unreachable since March").await;
    asked.assert_status(202);
    assert_eq!(asked.body["action"], "WRITE_OFF");
    write_off(&app, &admin, loan_id, "again")
        .await
        .assert_problem(409);
    // A payment while the write-off waits is taken as usual.
    app.pay(&borrower, loan_id, json!("10.00"), None)
        .await
        .assert_status(201);

    app.clock.set(moment("2026-06-22"));
    // The principal the book still has out on this loan, about to be lost.
    let book = app.get("/reports/portfolio", &admin.token).await;
    let unpaid = book.body["principalOutstanding"]
        .as_str()
        .expect("money")
        .to_owned();
    let confirmed = confirm(&app, &second, &decision_id(&asked)).await;
    confirmed.assert_status(200);
    let loan = &confirmed.body;
    assert_eq!(loan["status"], "WRITTEN_OFF");
    assert!(
        loan["writtenOffAt"]
            .as_str()
            .is_some_and(|at| at.starts_with("2026-06-22"))
    );
    // 10 000.00 less the principal the two payments paid.
    assert_eq!(loan["principalWrittenOff"], unpaid.as_str());
    assert!(crate::servicing::cents(&unpaid) > 900_000);
    assert_eq!(loan["daysPastDue"], 0);
    assert_eq!(loan["delinquencyBucket"], Value::Null);
    let audit = app.audit_rows("LOAN_WRITTEN_OFF").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor_id, Some(second.id));
    assert_eq!(
        audit[0].details["reason"],
        "borrower unreachable since March"
    );
    assert_eq!(audit[0].details["requestedBy"], json!(manager.id));
    assert_eq!(audit[0].details["decisionId"], json!(decision_id(&asked)));
    assert_eq!(audit[0].details["principal"], loan["principalWrittenOff"]);
    // 300.00 paid #1's fee (44.42), its interest (100.00) and 155.58 of
    // its principal; 10.00 more of principal: 165.58 of principal repaid.
    assert_eq!(loan["principalWrittenOff"], "9834.42");
    let schedule = loan["schedule"].as_array().expect("schedule");
    let total = |field: &str| -> i64 {
        schedule
            .iter()
            .map(|row| crate::servicing::cents(row[field].as_str().expect("money")))
            .sum()
    };
    assert_eq!(total("penalty"), 5 * 4442, "five fees by 2026-06-20");
    let owed = |minor: i64| format!("{}.{:02}", minor / 100, minor % 100);
    assert_eq!(
        audit[0].details["penalties"],
        owed(total("penalty") - 4442).as_str()
    );
    assert_eq!(
        audit[0].details["interest"],
        owed(total("interest") - 10_000).as_str()
    );
    let write_offs = journal(&app, &admin, "?kind=WRITE_OFF").await;
    assert_eq!(write_offs.len(), 1);
    let written = loan["principalWrittenOff"]
        .as_str()
        .expect("money")
        .to_owned();
    assert_eq!(
        write_offs[0]["lines"],
        json!([
            { "account": "1100", "debit": "0.00", "credit": written },
            { "account": "5000", "debit": written, "credit": "0.00" },
        ])
    );
    let outstanding = loan["outstanding"].as_str().expect("money").to_owned();
    assert_books_agree(&app).await;

    // No more fees, overdue notices or reminders; out of the overdue list,
    // the buckets and PAR.
    let notices = app.notification_kinds(borrower.id).await.len();
    app.run_job(&admin, "overdue-check", "2026-08-20").await;
    app.run_job(&admin, "payment-reminders", "2026-08-20").await;
    let later = app.loan_body(&borrower.token, &loan_id).await;
    assert_eq!(later["status"], "WRITTEN_OFF");
    assert_eq!(later["outstanding"], outstanding.as_str());
    assert_eq!(app.notification_kinds(borrower.id).await.len(), notices);
    let overdue = app.get("/payments/overdue", &admin.token).await;
    assert_eq!(overdue.body["items"], json!([]));
    let report = app.get("/reports/portfolio", &admin.token).await;
    assert_eq!(report.body["loansByStatus"]["WRITTEN_OFF"], 1);
    assert_eq!(report.body["principalWrittenOff"], written.as_str());
    assert_eq!(report.body["principalOutstanding"], "0.00");
    assert_eq!(report.body["recoveries"], "0.00");
    assert_eq!(report.body["par30"], "0.0000");
    let listed = app.get("/loans?status=WRITTEN_OFF", &admin.token).await;
    assert_eq!(listed.body["items"][0]["id"], json!(loan_id));
    let late = app.get("/loans?bucket=91%2B", &admin.token).await;
    late.assert_status(200);
    assert_eq!(late.body["items"], json!([]));

    // Payments are still taken, as recoveries.
    let recovery = app.pay(&borrower, loan_id, json!("200.00"), None).await;
    recovery.assert_status(201);
    assert_eq!(recovery.body["loanStatus"], "WRITTEN_OFF");
    let recoveries = journal(&app, &admin, "?kind=RECOVERY").await;
    assert_eq!(
        recoveries[0]["lines"],
        json!([
            { "account": "1000", "debit": "200.00", "credit": "0.00" },
            { "account": "4200", "debit": "0.00", "credit": "200.00" },
        ])
    );
    let report = app.get("/reports/portfolio", &admin.token).await;
    assert_eq!(report.body["recoveries"], "200.00");
    assert_books_agree(&app).await;
    // Only to the next installments; not valued before the write-off.
    pay_with(
        &app,
        &admin,
        loan_id,
        json!({ "amount": "50.00", "excess": "REDUCE_TERM" }),
    )
    .await
    .assert_invalid_fields(&["excess"]);
    pay_with(
        &app,
        &admin,
        loan_id,
        json!({ "amount": "50.00", "valueDate": "2026-06-21" }),
    )
    .await
    .assert_problem(409);
    // No payoff, no settlement, no reversal of what came before.
    app.get(&format!("/loans/{loan_id}/payoff"), &borrower.token)
        .await
        .assert_problem(409);
    app.post(
        &format!("/loans/{loan_id}/settle"),
        Some(&borrower.token),
        json!({ "amount": "100.00" }),
    )
    .await
    .assert_problem(409);
    reverse(&app, &admin, &id_of(&before.body), "bounced")
        .await
        .assert_problem(409);
    // A recovery can be reversed; its entry is mirrored.
    reverse(&app, &admin, &id_of(&recovery.body), "bounced")
        .await
        .assert_status(200);
    let report = app.get("/reports/portfolio", &admin.token).await;
    assert_eq!(report.body["recoveries"], "0.00");
    let balance = trial_balance(&app, &admin, "").await;
    let five_thousand = balance["accounts"][5]["balance"].as_str().expect("5000");
    assert_eq!(five_thousand, written.as_str());
    assert_books_agree(&app).await;

    // Everything owed, recovered: still WRITTEN_OFF, and no LOAN_PAID.
    let owed = app.loan_body(&borrower.token, &loan_id).await["outstanding"]
        .as_str()
        .expect("owed")
        .to_owned();
    let last = app.pay(&borrower, loan_id, json!(owed), None).await;
    last.assert_status(201);
    assert_eq!(last.body["loanStatus"], "WRITTEN_OFF");
    assert!(
        !app.notification_kinds(borrower.id)
            .await
            .contains(&"LOAN_PAID".to_owned())
    );
    assert_books_agree(&app).await;
}

#[tokio::test]
async fn only_an_overdue_loan_can_be_written_off() {
    let app = TestApp::spawn().await;
    let (_, admin, loan_id) = app.golden_loan().await;
    write_off(&app, &admin, loan_id, "hopeless")
        .await
        .assert_problem(409);
    write_off(&app, &admin, loan_id, "")
        .await
        .assert_invalid_fields(&["reason"]);
    write_off(&app, &admin, Uuid::now_v7(), "hopeless")
        .await
        .assert_problem(404);
}

// ---------------------------------------------------------------------------
// Races
// ---------------------------------------------------------------------------

/// Sends `request` on a task of its own, to race others.
fn spawn_request(app: &TestApp, request: Request<Body>) -> tokio::task::JoinHandle<TestResponse> {
    let router = app.router.clone();
    tokio::spawn(async move { send_to(&router, request).await })
}

fn confirm_request(admin: &TestUser, decision: &str) -> Request<Body> {
    post_request(
        &format!("/decisions/{decision}/confirm"),
        &admin.token,
        &json!({}),
        None,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_admins_confirming_at_once_confirm_once() {
    let app = four_eyes_app().await;
    let Staffed {
        borrower,
        first,
        second,
        ..
    } = staffed(&app).await;
    let third = app.user_with_role("third", "ADMIN").await;
    let loan_id = app.apply(&borrower, "9000.00", 12).await;
    let asked = app
        .patch(&format!("/loans/{loan_id}/approve"), &first.token, None)
        .await;
    let decision = decision_id(&asked);
    let spawn = |request| spawn_request(&app, request);
    let a = spawn(confirm_request(&second, &decision));
    let b = spawn(confirm_request(&third, &decision));
    let mut statuses = vec![
        a.await.expect("task").status.as_u16(),
        b.await.expect("task").status.as_u16(),
    ];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409]);
    assert_eq!(app.audit_rows("LOAN_APPROVED").await.len(), 1);
    assert_eq!(app.count("journal_entries").await, 1);
    assert_books_agree(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_confirmation_racing_a_rejection_or_a_cancellation_ends_consistent() {
    let app = four_eyes_app().await;
    let Staffed {
        borrower,
        first,
        second,
        ..
    } = staffed(&app).await;
    for race in ["reject", "cancel"] {
        let loan_id = app.apply(&borrower, "9000.00", 12).await;
        let asked = app
            .patch(&format!("/loans/{loan_id}/approve"), &first.token, None)
            .await;
        let decision = decision_id(&asked);
        let spawn = |request| spawn_request(&app, request);
        let confirmation = spawn(confirm_request(&second, &decision));
        let other = if race == "reject" {
            spawn(
                Request::builder()
                    .method("PATCH")
                    .uri(format!("/loans/{loan_id}/reject"))
                    .header("authorization", format!("Bearer {}", first.token))
                    .header("content-type", "application/json")
                    .body(Body::from(json!({ "reason": "no" }).to_string()))
                    .expect("request"),
            )
        } else {
            spawn(
                Request::builder()
                    .method("PATCH")
                    .uri(format!("/loans/{loan_id}/cancel"))
                    .header("authorization", format!("Bearer {}", borrower.token))
                    .body(Body::empty())
                    .expect("request"),
            )
        };
        let confirmation = confirmation.await.expect("task");
        let other = other.await.expect("task");
        let loan = app.loan_body(&borrower.token, &loan_id).await;
        let shown = app
            .get(&format!("/decisions/{decision}"), &first.token)
            .await;
        match (confirmation.status.as_u16(), other.status.as_u16()) {
            (200, 409) => {
                assert_eq!(loan["status"], "APPROVED");
                assert_eq!(shown.body["status"], "CONFIRMED");
            }
            (409, 200) => {
                assert_ne!(loan["status"], "APPROVED");
                assert_eq!(shown.body["status"], "PENDING");
            }
            other => panic!("{race}: {other:?}"),
        }
    }
    assert_books_agree(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_racing_a_write_off_ends_consistent() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = overdue_loan(&app).await;
    let second = app.user_with_role("second", "ADMIN").await;
    let asked = write_off(&app, &admin, loan_id, "unreachable").await;
    let decision = decision_id(&asked);
    let spawn = |request| spawn_request(&app, request);
    let payments: Vec<_> = (0..4)
        .map(|_| {
            spawn(crate::servicing::payment_request(
                &borrower,
                loan_id,
                &json!({ "amount": "25.00" }),
            ))
        })
        .collect();
    let confirmation = spawn(confirm_request(&second, &decision));
    for payment in payments {
        assert_eq!(payment.await.expect("task").status.as_u16(), 201);
    }
    assert_eq!(confirmation.await.expect("task").status.as_u16(), 200);
    let loan = app.loan_body(&borrower.token, &loan_id).await;
    assert_eq!(loan["status"], "WRITTEN_OFF");
    assert_eq!(loan["totalPaid"], "100.00");
    // Each payment is a repayment or a recovery, by when it came.
    let entries = journal(&app, &admin, &format!("?loanId={loan_id}")).await;
    let kinds: Vec<&str> = entries.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "REPAYMENT" || **k == "RECOVERY")
            .count(),
        4
    );
    assert_books_agree(&app).await;
}

// ---------------------------------------------------------------------------
// Upgrade
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_existing_database_upgrades_to_loans_that_can_be_written_off() {
    use sea_orm::ConnectionTrait;
    let (borrower, loan_id, payment_id) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let app = TestApp::builder()
        .upgrading_from(
            2,
            crate::servicing::earlier_version_rows(borrower, loan_id, payment_id),
        )
        .build()
        .await;
    let admin = app.admin().await;
    let second = app.user_with_role("second", "ADMIN").await;
    // The loan of the earlier version: every column the upgrade added has
    // its value for a loan never written off.
    let loan = app.get(&format!("/loans/{loan_id}"), &admin.token).await;
    assert_eq!(loan.body["writtenOffAt"], Value::Null);
    assert_eq!(loan.body["principalWrittenOff"], "0.00");
    assert_eq!(loan.body["pendingDecisions"], json!([]));

    // Installment 2, due 2026-02-10, unpaid on 2026-03-01: OVERDUE.
    app.clock.set(moment("2026-03-01"));
    app.run_job(&admin, "overdue-check", "2026-03-01").await;
    let asked = write_off(&app, &admin, loan_id, "moved abroad").await;
    asked.assert_status(202);
    let confirmed = confirm(&app, &second, &decision_id(&asked)).await;
    confirmed.assert_status(200);
    assert_eq!(confirmed.body["status"], "WRITTEN_OFF");
    assert_eq!(confirmed.body["principalWrittenOff"], "200.00");
    assert_books_agree(&app).await;

    // The widened status check still refuses what is not a status.
    let refused = app
        .state
        .db
        .write
        .execute_unprepared(&format!(
            "UPDATE loans SET status = 'LOST' WHERE id = {}",
            crate::servicing::uuid_literal(loan_id)
        ))
        .await;
    assert!(refused.is_err(), "a status outside the list was stored");
    if !app.state.db.is_postgres() {
        let check = app
            .state
            .db
            .write
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Sqlite,
                "PRAGMA integrity_check",
            ))
            .await
            .expect("integrity check")
            .expect("a row");
        assert_eq!(check.try_get_by_index::<String>(0).expect("text"), "ok");
    }
}
