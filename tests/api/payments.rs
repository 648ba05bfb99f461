//! `/payments`: exact allocation, atomicity, idempotency, concurrency,
//! history and the overdue list.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TestApp, TestResponse, TestUser};

fn portions(payment: &Value) -> (&str, &str, &str) {
    (
        payment["principalPortion"].as_str().expect("principal"),
        payment["interestPortion"].as_str().expect("interest"),
        payment["penaltyPortion"].as_str().expect("penalty"),
    )
}

fn installment(loan: &Value, number: usize) -> &Value {
    &loan["schedule"][number - 1]
}

#[tokio::test]
async fn a_full_installment_pays_its_interest_and_principal() {
    let app = TestApp::spawn().await;
    let (borrower, _, loan_id) = app.golden_loan().await;
    let response = app.pay(&borrower, loan_id, json!("888.49"), None).await;
    response.assert_status(201);
    let payment = &response.body;
    assert_eq!(payment["loanId"], json!(loan_id));
    assert_eq!(payment["userId"], json!(borrower.id));
    assert_eq!(payment["recordedBy"], json!(borrower.id));
    assert_eq!(payment["amount"], "888.49");
    assert_eq!(payment["currency"], "USD");
    assert_eq!(portions(payment), ("788.49", "100.00", "0.00"));
    assert_eq!(payment["paidAt"], "2026-01-15T10:00:00Z");
    assert_eq!(payment["loanStatus"], "APPROVED");
    assert_eq!(payment["loanOutstanding"], "9773.37");

    let loan = app.loan_body(&borrower.token, &loan_id).await;
    assert_eq!(loan["totalPaid"], "888.49");
    assert_eq!(loan["outstanding"], "9773.37");
    assert_eq!(loan["nextDueDate"], "2026-03-15");
    assert_eq!(installment(&loan, 1)["status"], "PAID");
    assert_eq!(installment(&loan, 1)["amountPaid"], "888.49");
    assert_eq!(installment(&loan, 2)["status"], "PENDING");
    assert_eq!(
        app.notification_kinds(borrower.id).await,
        ["LOAN_APPROVED", "PAYMENT_RECEIVED"]
    );
    let audit = app.audit_rows("PAYMENT_RECORDED").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(
        audit[0].entity_id.map(|id| id.to_string()),
        payment["id"].as_str().map(str::to_owned)
    );
}

#[tokio::test]
async fn partial_payments_fill_interest_before_principal() {
    let app = TestApp::spawn().await;
    let (borrower, _, loan_id) = app.golden_loan().await;
    let first = app.pay(&borrower, loan_id, json!(50), None).await;
    first.assert_status(201);
    assert_eq!(portions(&first.body), ("0.00", "50.00", "0.00"));
    let loan = app.loan_body(&borrower.token, &loan_id).await;
    assert_eq!(installment(&loan, 1)["status"], "PARTIAL");
    assert_eq!(installment(&loan, 1)["amountPaid"], "50.00");
    assert_eq!(loan["nextDueDate"], "2026-02-15");

    // The rest of #1 (50.00 interest + 788.49 principal), then 61.51 of #2's interest.
    let second = app.pay(&borrower, loan_id, json!("900.00"), None).await;
    second.assert_status(201);
    assert_eq!(portions(&second.body), ("788.49", "111.51", "0.00"));
    assert_eq!(second.body["loanOutstanding"], "9711.86");
    let loan = app.loan_body(&borrower.token, &loan_id).await;
    assert_eq!(installment(&loan, 1)["status"], "PAID");
    assert_eq!(installment(&loan, 2)["status"], "PARTIAL");
    assert_eq!(installment(&loan, 2)["amountPaid"], "61.51");
    assert_eq!(loan["nextDueDate"], "2026-03-15");
}

#[tokio::test]
async fn one_payment_can_cover_several_installments() {
    let app = TestApp::spawn().await;
    let (borrower, _, loan_id) = app.golden_loan().await;
    let response = app.pay(&borrower, loan_id, json!("2000.00"), None).await;
    response.assert_status(201);
    // #1 and #2 in full (888.49 each), then #3: 84.15 interest and 138.87 principal.
    assert_eq!(portions(&response.body), ("1723.73", "276.27", "0.00"));
    let loan = app.loan_body(&borrower.token, &loan_id).await;
    let statuses: Vec<&str> = (1..=4)
        .map(|n| installment(&loan, n)["status"].as_str().expect("status"))
        .collect();
    assert_eq!(statuses, ["PAID", "PAID", "PARTIAL", "PENDING"]);
    assert_eq!(installment(&loan, 3)["amountPaid"], "223.02");
    assert_eq!(app.count("payment_allocations").await, 3);
}

#[tokio::test]
async fn more_than_is_owed_is_refused_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let (borrower, _, loan_id) = app.golden_loan().await;
    let response = app.pay(&borrower, loan_id, json!("10661.87"), None).await;
    response.assert_invalid_fields(&["amount"]);
    assert!(response.text.contains("10661.86"), "{}", response.text);
    for amount in [
        json!(0),
        json!(-1),
        json!("1.001"),
        json!("abc"),
        json!(null),
    ] {
        app.pay(&borrower, loan_id, amount, None)
            .await
            .assert_invalid_fields(&["amount"]);
    }
    assert_eq!(app.count("payments").await, 0);
    assert_eq!(app.count("payment_allocations").await, 0);
    assert!(app.audit_rows("PAYMENT_RECORDED").await.is_empty());
    assert_eq!(app.notification_kinds(borrower.id).await, ["LOAN_APPROVED"]);
    let loan = app.loan_body(&borrower.token, &loan_id).await;
    assert_eq!(loan["totalPaid"], "0.00");
    assert_eq!(loan["outstanding"], "10661.86");
}

#[tokio::test]
async fn paying_everything_marks_the_loan_paid() {
    let app = TestApp::spawn().await;
    let borrower = app.register("payer").await;
    let admin = app.admin().await;
    let loan_id = app.apply(&borrower, "1000.00", 3).await;
    app.approve(&admin, loan_id, Some(json!({ "annualInterestRate": "0" })))
        .await;
    app.pay(&borrower, loan_id, json!("400.00"), None)
        .await
        .assert_status(201);
    let last = app.pay(&borrower, loan_id, json!("600.00"), None).await;
    last.assert_status(201);
    assert_eq!(last.body["loanStatus"], "PAID");
    assert_eq!(last.body["loanOutstanding"], "0.00");
    let loan = app.loan_body(&borrower.token, &loan_id).await;
    assert_eq!(loan["status"], "PAID");
    assert_eq!(loan["totalPaid"], "1000.00");
    assert_eq!(loan["nextDueDate"], json!(null));
    for n in 1..=3 {
        assert_eq!(installment(&loan, n)["status"], "PAID");
    }
    assert_eq!(
        app.notification_kinds(borrower.id).await,
        [
            "LOAN_APPROVED",
            "PAYMENT_RECEIVED",
            "PAYMENT_RECEIVED",
            "LOAN_PAID"
        ]
    );
    assert_eq!(app.audit_rows("LOAN_PAID").await.len(), 1);
    app.pay(&borrower, loan_id, json!("1.00"), None)
        .await
        .assert_problem(409);
}

#[tokio::test]
async fn only_active_loans_take_payments_and_only_their_people_pay() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner").await;
    let stranger = app.register("stranger").await;
    let manager = app.manager().await;
    let admin = app.admin().await;
    let pending = app.apply(&owner, "500.00", 5).await;
    app.pay(&owner, pending, json!("10.00"), None)
        .await
        .assert_problem(409);
    let rejected = app.apply(&owner, "500.00", 5).await;
    app.patch(
        &format!("/loans/{rejected}/reject"),
        &manager.token,
        Some(json!({ "reason": "no" })),
    )
    .await
    .assert_status(200);
    app.pay(&owner, rejected, json!("10.00"), None)
        .await
        .assert_problem(409);

    let active = app.apply(&owner, "500.00", 5).await;
    app.approve(&admin, active, None).await;
    app.pay(&stranger, active, json!("10.00"), None)
        .await
        .assert_problem(404);
    app.pay(&stranger, Uuid::now_v7(), json!("10.00"), None)
        .await
        .assert_problem(404);
    let by_staff = app.pay(&manager, active, json!("10.00"), None).await;
    by_staff.assert_status(201);
    assert_eq!(by_staff.body["userId"], json!(owner.id));
    assert_eq!(by_staff.body["recordedBy"], json!(manager.id));
    app.call(
        axum::http::Method::POST,
        &format!("/payments/{active}"),
        None,
        Some(json!({ "amount": "1" })),
    )
    .await
    .assert_problem(401);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_original_payment() {
    let app = TestApp::spawn().await;
    let (borrower, _, loan_id) = app.golden_loan().await;
    let first = app
        .pay(&borrower, loan_id, json!("100.00"), Some("order-1"))
        .await;
    first.assert_status(201);
    let again = app
        .pay(&borrower, loan_id, json!(100), Some("order-1"))
        .await;
    again.assert_status(201);
    assert_eq!(again.body, first.body, "the same body, the same answer");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.count("payments").await, 1);

    app.pay(&borrower, loan_id, json!("100.01"), Some("order-1"))
        .await
        .assert_problem(409);
    app.pay(&borrower, loan_id, json!("100.00"), Some("order-2"))
        .await
        .assert_status(201);
    app.pay(&borrower, loan_id, json!("100.00"), Some(&"k".repeat(256)))
        .await
        .assert_invalid_fields(&["Idempotency-Key"]);
    assert_eq!(app.count("payments").await, 2);

    // Keys belong to their user: the admin's "order-1" is a new payment.
    let admin = app.user_with_role("other-admin", "ADMIN").await;
    app.pay(&admin, loan_id, json!("100.00"), Some("order-1"))
        .await
        .assert_status(201);
    assert_eq!(app.count("payments").await, 3);
    let loan = app.loan_body(&borrower.token, &loan_id).await;
    assert_eq!(loan["totalPaid"], "300.00");

    // After 24 hours the key is forgotten.
    app.clock.advance(chrono::Duration::hours(25));
    let relogin = app
        .login(json!({ "username": "borrower", "password": crate::support::PASSWORD }))
        .await;
    let borrower = crate::support::test_user(&relogin.body);
    let later = app
        .pay(&borrower, loan_id, json!("100.00"), Some("order-1"))
        .await;
    later.assert_status(201);
    assert_ne!(later.body["id"], first.body["id"]);
}

#[tokio::test]
async fn racing_requests_with_one_key_record_one_payment() {
    let app = TestApp::spawn().await;
    let (borrower, _, loan_id) = app.golden_loan().await;
    let requests =
        (0..10).map(|_| app.pay(&borrower, loan_id, json!("250.00"), Some("retry-storm")));
    let responses = futures_util::future::join_all(requests).await;
    let ids: std::collections::HashSet<&str> = responses
        .iter()
        .map(|r| {
            r.assert_status(201);
            r.body["id"].as_str().expect("id")
        })
        .collect();
    assert_eq!(ids.len(), 1, "every answer is the one payment");
    assert_eq!(app.count("payments").await, 1);
    let loan = app.loan_body(&borrower.token, &loan_id).await;
    assert_eq!(loan["totalPaid"], "250.00");
}

#[tokio::test]
async fn concurrent_payments_never_record_more_than_is_owed() {
    let app = TestApp::spawn().await;
    let borrower = app.register("racer").await;
    let admin = app.admin().await;
    let loan_id = app.apply(&borrower, "1000.00", 3).await;
    app.approve(&admin, loan_id, Some(json!({ "annualInterestRate": "0" })))
        .await;
    // 50 × 30.00 = 1500.00 offered against 1000.00 owed: 33 fit.
    let requests = (0..50).map(|_| app.pay(&borrower, loan_id, json!("30.00"), None));
    let responses = futures_util::future::join_all(requests).await;
    let accepted = responses.iter().filter(|r| r.status == 201).count();
    let refused = responses.iter().filter(|r| r.status == 422).count();
    assert_eq!(
        (accepted, refused),
        (33, 17),
        "{:?}",
        responses.iter().map(|r| r.status).collect::<Vec<_>>()
    );

    use loan_tracker::db::entities::{installment, loan, payment};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let db = &app.state.db.read;
    let payments = payment::Entity::find()
        .filter(payment::Column::LoanId.eq(loan_id))
        .all(db)
        .await
        .expect("payments");
    let recorded: i64 = payments.iter().map(|p| p.amount_minor).sum();
    assert_eq!(recorded, 99_000);
    let stored = loan::Entity::find_by_id(loan_id)
        .one(db)
        .await
        .expect("query")
        .expect("loan");
    assert_eq!(
        stored.total_paid_minor, recorded,
        "loan totals equal the payment rows"
    );
    let installments = installment::Entity::find()
        .filter(installment::Column::LoanId.eq(loan_id))
        .all(db)
        .await
        .expect("installments");
    let allocated: i64 = installments
        .iter()
        .map(|i| i.principal_paid_minor + i.interest_paid_minor + i.penalty_paid_minor)
        .sum();
    assert_eq!(
        allocated, recorded,
        "installments hold exactly what was paid"
    );
    let portions: i64 = payments
        .iter()
        .map(|p| p.principal_minor + p.interest_minor + p.penalty_minor)
        .sum();
    assert_eq!(portions, recorded);
    // The journal is in step with the loans after the race too.
    crate::books::assert_books_agree(&app).await;
}

#[tokio::test]
async fn a_late_payment_pays_the_penalty_first_and_ends_the_overdue_status() {
    let app = TestApp::spawn().await;
    let (_, _, loan_id) = app.golden_loan().await;
    // What the overdue job does (tested with the job itself elsewhere):
    // installment 1 overdue with a 44.42 late fee, the loan OVERDUE.
    app.sql(
        "UPDATE installments SET status = 'OVERDUE', penalty_minor = 4442 WHERE number = 1 AND loan_id IN \
         (SELECT id FROM loans WHERE status = 'APPROVED')",
    )
    .await;
    app.sql("UPDATE loans SET status = 'OVERDUE', penalties_minor = 4442")
        .await;
    app.clock.advance(chrono::Duration::days(45)); // 2026-03-01: #1 past due, #2 not yet
    let relogin = app
        .login(json!({ "username": "borrower", "password": crate::support::PASSWORD }))
        .await;
    let borrower = crate::support::test_user(&relogin.body);

    let partial = app.pay(&borrower, loan_id, json!("100.00"), None).await;
    partial.assert_status(201);
    assert_eq!(portions(&partial.body), ("0.00", "55.58", "44.42"));
    assert_eq!(
        partial.body["loanStatus"], "OVERDUE",
        "#1 is still not fully paid"
    );

    let rest = app.pay(&borrower, loan_id, json!("832.91"), None).await;
    rest.assert_status(201);
    assert_eq!(portions(&rest.body), ("788.49", "44.42", "0.00"));
    assert_eq!(
        rest.body["loanStatus"], "APPROVED",
        "nothing overdue is left"
    );
    let loan = app.loan_body(&borrower.token, &loan_id).await;
    assert_eq!(loan["status"], "APPROVED");
    assert_eq!(loan["penaltiesOutstanding"], "0.00");
    assert_eq!(loan["totalPaid"], "932.91");
    assert_eq!(loan["outstanding"], "9773.37");
    assert_eq!(installment(&loan, 1)["status"], "PAID");
    assert_eq!(installment(&loan, 1)["penalty"], "44.42");
    assert_eq!(installment(&loan, 1)["amountDue"], "932.91");
}

#[tokio::test]
async fn payment_history_is_per_user_and_newest_first() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    let other = app.register("other").await;
    for amount in ["10.00", "20.00", "30.00"] {
        app.pay(&borrower, loan_id, json!(amount), None)
            .await
            .assert_status(201);
    }
    let own = app
        .get(
            &format!("/payments/user/{}?limit=2", borrower.id),
            &borrower.token,
        )
        .await;
    own.assert_status(200);
    let amounts: Vec<&str> = own.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["amount"].as_str().expect("amount"))
        .collect();
    assert_eq!(amounts, ["30.00", "20.00"]);
    let cursor = own.body["nextCursor"].as_str().expect("cursor");
    let rest = app
        .get(
            &format!("/payments/user/{}?limit=2&cursor={cursor}", borrower.id),
            &borrower.token,
        )
        .await;
    assert_eq!(rest.body["items"][0]["amount"], "10.00");
    assert_eq!(rest.body["nextCursor"], json!(null));
    assert_eq!(rest.body["items"][0]["loanOutstanding"], "10651.86");

    app.get(&format!("/payments/user/{}", borrower.id), &other.token)
        .await
        .assert_problem(403);
    let by_admin = app
        .get(
            &format!("/payments/user/{}?loanId={loan_id}", borrower.id),
            &admin.token,
        )
        .await;
    assert_eq!(by_admin.body["items"].as_array().map(Vec::len), Some(3));
    let none = app
        .get(
            &format!("/payments/user/{}?loanId={}", borrower.id, Uuid::now_v7()),
            &admin.token,
        )
        .await;
    assert_eq!(none.body["items"], json!([]));
    app.get(
        &format!("/payments/user/{}?loanId=x", borrower.id),
        &admin.token,
    )
    .await
    .assert_invalid_fields(&["loanId"]);
}

#[tokio::test]
async fn the_overdue_list_shows_unpaid_past_installments() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let admin = app.admin().await;
    let manager = app.manager().await;
    // Migrated-in loans whose first installments fall before today (2026-01-15).
    let alice_loan = app.apply(&alice, "1200.00", 12).await;
    app.approve(
        &admin,
        alice_loan,
        Some(json!({ "annualInterestRate": "0", "firstDueDate": "2025-11-10" })),
    )
    .await;
    let bob_loan = app.apply(&bob, "600.00", 6).await;
    app.approve(
        &admin,
        bob_loan,
        Some(json!({ "annualInterestRate": "0", "firstDueDate": "2025-12-20" })),
    )
    .await;
    // Approval brought both loans up to today: every installment due before
    // 2026-01-15 carries its 5.00 fee (5 % of 100.00). Alice's 150.00 pays
    // the first installment with its fee (105.00), then the second's fee
    // and 40.00 of it.
    app.pay(&alice, alice_loan, json!("150.00"), None)
        .await
        .assert_status(201);

    let rows =
        |response: &crate::support::TestResponse| -> Vec<(String, i64, String, String, i64)> {
            response.body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|i| {
                    (
                        i["dueDate"].as_str().expect("due").to_owned(),
                        i["installmentNumber"].as_i64().expect("number"),
                        i["amountDue"].as_str().expect("due").to_owned(),
                        i["amountPaid"].as_str().expect("paid").to_owned(),
                        i["daysOverdue"].as_i64().expect("days"),
                    )
                })
                .collect()
        };
    let all = app.get("/payments/overdue", &manager.token).await;
    all.assert_status(200);
    assert_eq!(
        rows(&all),
        [
            (
                "2026-01-10".to_owned(),
                3,
                "105.00".to_owned(),
                "0.00".to_owned(),
                5
            ),
            (
                "2025-12-20".to_owned(),
                1,
                "105.00".to_owned(),
                "0.00".to_owned(),
                26
            ),
            (
                "2025-12-10".to_owned(),
                2,
                "105.00".to_owned(),
                "45.00".to_owned(),
                36
            ),
        ],
        "newest first"
    );
    assert_eq!(all.body["items"][2]["loanId"], json!(alice_loan));
    assert_eq!(all.body["items"][2]["userId"], json!(alice.id));
    assert_eq!(all.body["items"][2]["currency"], "USD");
    assert_eq!(all.body["items"][2]["penalty"], "5.00");

    let own = app.get("/payments/overdue", &bob.token).await;
    assert_eq!(
        rows(&own),
        [(
            "2025-12-20".to_owned(),
            1,
            "105.00".to_owned(),
            "0.00".to_owned(),
            26
        )]
    );
    app.get("/payments/overdue?asOf=2026-03-01", &bob.token)
        .await
        .assert_problem(403);

    let later = app
        .get("/payments/overdue?asOf=2026-02-21&limit=2", &admin.token)
        .await;
    assert_eq!(rows(&later).len(), 2);
    let cursor = later.body["nextCursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let mut seen = rows(&later);
    let mut next = Some(cursor);
    while let Some(cursor) = next {
        let page = app
            .get(
                &format!("/payments/overdue?asOf=2026-02-21&limit=2&cursor={cursor}"),
                &admin.token,
            )
            .await;
        page.assert_status(200);
        seen.extend(rows(&page));
        next = page.body["nextCursor"].as_str().map(str::to_owned);
    }
    let dates: Vec<&str> = seen.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        dates,
        [
            "2026-02-20",
            "2026-02-10",
            "2026-01-20",
            "2026-01-10",
            "2025-12-20",
            "2025-12-10"
        ]
    );

    app.get("/payments/overdue?asOf=tomorrow", &admin.token)
        .await
        .assert_invalid_fields(&["asOf"]);
    app.get("/payments/overdue?cursor=bogus", &admin.token)
        .await
        .assert_invalid_fields(&["cursor"]);
}

/// Two borrowers, each with an approved 1000.00 loan over 3 months at 0 %
/// (installments of 333.33, 333.33 and 333.34).
async fn two_borrowers_with_loans(app: &TestApp) -> [(TestUser, Uuid); 2] {
    let admin = app.admin().await;
    let mut pairs = Vec::new();
    for name in ["first", "second"] {
        let borrower = app.register(name).await;
        let loan_id = app.apply(&borrower, "1000.00", 3).await;
        app.approve(&admin, loan_id, Some(json!({ "annualInterestRate": "0" })))
            .await;
        pairs.push((borrower, loan_id));
    }
    pairs.try_into().expect("two pairs")
}

/// Sends `requests` together while the writers are held up (the write lock
/// on SQLite, every loan's lock on PostgreSQL), so that all of them wait
/// in the payment queue before any is written; their answers, in order.
async fn send_while_writers_wait(
    app: &TestApp,
    requests: Vec<futures_util::future::BoxFuture<'_, TestResponse>>,
) -> Vec<TestResponse> {
    use sea_orm::{ConnectionTrait, DbBackend, TransactionTrait};
    let blocker = app.state.db.write.begin().await.expect("begin");
    let hold = if app.state.db.backend() == DbBackend::Postgres {
        "SELECT id FROM loans FOR UPDATE"
    } else {
        "UPDATE loans SET updated_at = updated_at WHERE 0"
    };
    blocker
        .execute_unprepared(hold)
        .await
        .expect("hold the writers");
    let sent = requests.len();
    let release = async {
        let queued = crate::support::eventually(std::time::Duration::from_secs(10), async || {
            app.state.payment_queue.unanswered() == sent
        })
        .await;
        assert!(queued, "every request reaches the queue");
        blocker.rollback().await.expect("release");
    };
    let (responses, ()) = tokio::join!(futures_util::future::join_all(requests), release);
    responses
}

/// Payments that queue while their loans are locked are written together
/// (fewer transactions than requests), and each request still gets the
/// answer it would have had alone: payments accepted in any order, a
/// stranger's refused, a closed loan's refused, an overpayment refused
/// with its key left free, a repeated key answered once.
#[tokio::test]
async fn queued_payments_are_written_together_each_with_its_own_answer() {
    use futures_util::FutureExt;

    let app = TestApp::spawn().await;
    let [(borrower, loan_id), (neighbour, other_loan)] = two_borrowers_with_loans(&app).await;
    let stranger = app.register("stranger").await;
    let pending_loan = app.apply(&borrower, "500.00", 3).await;

    let (app, borrower) = (&app, &borrower);
    let mut requests = Vec::new();
    for number in 0..5 {
        let key = format!("part-{number}");
        requests.push(
            async move {
                app.pay(borrower, loan_id, json!("150.00"), Some(&key))
                    .await
            }
            .boxed(),
        );
    }
    for _ in 0..2 {
        requests.push(
            app.pay(borrower, loan_id, json!("100.00"), Some("same"))
                .boxed(),
        );
    }
    requests.push(
        app.pay(borrower, loan_id, json!("2000.00"), Some("too-much"))
            .boxed(),
    );
    requests.push(app.pay(&stranger, loan_id, json!("10.00"), None).boxed());
    requests.push(
        app.pay(borrower, pending_loan, json!("10.00"), None)
            .boxed(),
    );
    for _ in 0..3 {
        requests.push(
            app.pay(&neighbour, other_loan, json!("100.00"), None)
                .boxed(),
        );
    }
    let before = app.state.payment_queue.transactions_committed();
    let responses = send_while_writers_wait(app, requests).await;
    let transactions = app.state.payment_queue.transactions_committed() - before;

    let statuses: Vec<u16> = responses.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(
        statuses,
        [
            201, 201, 201, 201, 201, 201, 201, 422, 404, 409, 201, 201, 201
        ]
    );
    assert!(
        transactions <= 8,
        "13 requests in {transactions} transactions: at most one per writer (4) while they \
         were held, then the rest 4 at a time (3), then the repeated key's (1)"
    );
    let same = &responses[5..7];
    assert_eq!(
        same[0].body, same[1].body,
        "one payment under the repeated key"
    );
    assert_eq!(
        same.iter()
            .filter(|r| r.header("idempotent-replayed") == Some("true"))
            .count(),
        1
    );
    responses[7].assert_invalid_fields(&["amount"]);
    assert_eq!(app.count("payments").await, 9);

    let loan = app.loan_body(&borrower.token, &loan_id).await;
    assert_eq!(loan["totalPaid"], "850.00");
    assert_eq!(loan["outstanding"], "150.00");
    assert_eq!(installment(&loan, 1)["status"], "PAID");
    assert_eq!(installment(&loan, 2)["status"], "PAID");
    assert_eq!(installment(&loan, 3)["amountPaid"], "183.34");
    let other = app
        .get(&format!("/loans/{other_loan}"), &neighbour.token)
        .await
        .body;
    assert_eq!(other["totalPaid"], "300.00");
    for id in [loan_id, other_loan] {
        let differences = app.verify_books(id).await.expect("verify");
        assert!(differences.is_empty(), "{differences:?}");
    }
    // Each accepted payment has its own notice; the refused ones none.
    assert_eq!(
        app.notification_kinds(borrower.id)
            .await
            .iter()
            .filter(|kind| *kind == "PAYMENT_RECEIVED")
            .count(),
        6
    );
    // The refused overpayment left its key free for another request.
    app.pay(borrower, loan_id, json!("150.00"), Some("too-much"))
        .await
        .assert_status(201);
    let loan = app.loan_body(&borrower.token, &loan_id).await;
    assert_eq!(loan["status"], "PAID");
}

/// When a combined transaction fails, its payments are written again one
/// at a time: the one the database refuses fails alone.
#[tokio::test]
async fn a_payment_the_database_refuses_fails_alone_when_combined() {
    use futures_util::FutureExt;

    let app = TestApp::spawn().await;
    let [(borrower, loan_id), (neighbour, other_loan)] = two_borrowers_with_loans(&app).await;
    // A database rule this test adds: no payment of exactly 13.13.
    if app.state.db.is_postgres() {
        app.sql(
            "CREATE FUNCTION refuse_1313() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.amount_minor = 1313 THEN RAISE EXCEPTION 'refused by the test'; END IF; \
             RETURN NEW; END $$",
        )
        .await;
        app.sql(
            "CREATE TRIGGER refuse_1313 BEFORE INSERT ON payments \
             FOR EACH ROW EXECUTE FUNCTION refuse_1313()",
        )
        .await;
    } else {
        app.sql(
            "CREATE TRIGGER refuse_1313 BEFORE INSERT ON payments \
             WHEN NEW.amount_minor = 1313 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        )
        .await;
    }

    let requests = vec![
        app.pay(&borrower, loan_id, json!("100.00"), Some("before"))
            .boxed(),
        app.pay(&neighbour, other_loan, json!("13.13"), None)
            .boxed(),
        app.pay(&borrower, loan_id, json!("200.00"), None).boxed(),
        app.pay(&neighbour, other_loan, json!("50.00"), None)
            .boxed(),
    ];
    let responses = send_while_writers_wait(&app, requests).await;

    let statuses: Vec<u16> = responses.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(statuses, [201, 500, 201, 201]);
    assert_eq!(
        responses[1].assert_problem(500)["detail"],
        "The server failed to handle this request."
    );
    assert_eq!(app.count("payments").await, 3);
    let loan = app.loan_body(&borrower.token, &loan_id).await;
    assert_eq!(loan["totalPaid"], "300.00");
    let other = app
        .get(&format!("/loans/{other_loan}"), &neighbour.token)
        .await
        .body;
    assert_eq!(other["totalPaid"], "50.00");
    for id in [loan_id, other_loan] {
        let differences = app.verify_books(id).await.expect("verify");
        assert!(differences.is_empty(), "{differences:?}");
    }
    // The key of a payment that went through on the second try is kept.
    let again = app
        .pay(&borrower, loan_id, json!("100.00"), Some("before"))
        .await;
    again.assert_status(201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, responses[0].body);
}

/// What every payment writes costs no more than it must: loan pages have
/// room for an update that changes no indexed column to stay on its page
/// (PostgreSQL; SQLite has no such setting), installment pages are full
/// (they make their own room); installments keep no index by user beside
/// the one the overdue list reads; journal entries check no foreign keys.
#[tokio::test]
async fn payment_writes_keep_only_the_indexes_and_room_they_need() {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let app = TestApp::spawn().await;
    let backend = app.state.db.backend();
    let one_text = |sql: &str| {
        let statement = Statement::from_string(backend, sql.to_owned());
        let db = app.state.db.write.clone();
        async move {
            db.query_one_raw(statement)
                .await
                .expect("query")
                .and_then(|row| row.try_get_by_index::<Option<String>>(0).expect("text"))
        }
    };
    let index_exists = if backend == DbBackend::Postgres {
        "SELECT indexname FROM pg_indexes WHERE tablename = 'installments' AND indexname = 'installments_user_idx'"
    } else {
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'installments_user_idx'"
    };
    assert_eq!(one_text(index_exists).await, None);
    let by_user = if backend == DbBackend::Postgres {
        "SELECT indexname FROM pg_indexes WHERE tablename = 'installments' AND indexname = 'installments_user_unpaid_due_idx'"
    } else {
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'installments_user_unpaid_due_idx'"
    };
    assert_eq!(
        one_text(by_user).await.as_deref(),
        Some("installments_user_unpaid_due_idx")
    );
    // The journal's entries check no foreign keys (written only by the
    // servicing pipeline, from the loan it holds and the payment it adds).
    let journal_foreign_keys = if backend == DbBackend::Postgres {
        "SELECT CAST(COUNT(*) AS TEXT) FROM pg_constraint \
         WHERE conrelid = 'journal_entries'::regclass AND contype = 'f'"
    } else {
        "SELECT CAST(COUNT(*) AS TEXT) FROM pragma_foreign_key_list('journal_entries')"
    };
    assert_eq!(one_text(journal_foreign_keys).await.as_deref(), Some("0"));
    if backend == DbBackend::Postgres {
        for (table, expected) in [("loans", Some("fillfactor=85")), ("installments", None)] {
            let options = one_text(&format!(
                "SELECT array_to_string(reloptions, ',') FROM pg_class WHERE relname = '{table}' \
                 AND relnamespace = current_schema()::regnamespace"
            ))
            .await;
            assert_eq!(options.as_deref(), expected, "{table}");
        }
    }
}
