//! `/loans`: applications, approval with exact schedules, the status
//! machine, and who may see and do what.

use serde_json::{Value, json};

use crate::support::{TestApp, start_time};

fn schedule_rows(loan: &Value) -> Vec<(i64, String, String, String, String)> {
    loan["schedule"]
        .as_array()
        .expect("schedule")
        .iter()
        .map(|i| {
            (
                i["number"].as_i64().expect("number"),
                i["dueDate"].as_str().expect("due").to_owned(),
                i["principal"].as_str().expect("principal").to_owned(),
                i["interest"].as_str().expect("interest").to_owned(),
                i["amountDue"].as_str().expect("amount due").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_application_starts_pending_with_zero_figures() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let response = app
        .post(
            "/loans/apply",
            Some(&alice.token),
            json!({ "amount": 10000, "termMonths": 12, "purpose": "  New roof " }),
        )
        .await;
    response.assert_status(201);
    let loan = &response.body;
    assert_eq!(loan["userId"], json!(alice.id));
    assert_eq!(loan["status"], "PENDING");
    assert_eq!(loan["currency"], "USD");
    assert_eq!(loan["principal"], "10000.00");
    assert_eq!(loan["annualInterestRate"], "12.0");
    assert_eq!(loan["termMonths"], 12);
    assert_eq!(loan["purpose"], "New roof");
    for field in [
        "installmentAmount",
        "totalPayable",
        "totalPaid",
        "outstanding",
        "penaltiesOutstanding",
    ] {
        assert_eq!(loan[field], "0.00", "{field}");
    }
    assert_eq!(loan["nextDueDate"], json!(null));
    assert_eq!(loan["approvedBy"], json!(null));
    assert_eq!(loan["approvedAt"], json!(null));
    assert_eq!(loan["rejectionReason"], json!(null));
    assert_eq!(loan["createdAt"], "2026-01-15T10:00:00Z");
    assert_eq!(loan["schedule"], json!([]));
    let audit = app.audit_rows("LOAN_APPLIED").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(
        audit[0].details,
        json!({ "amount": "10000.00", "termMonths": 12, "annualInterestRate": "12.0" })
    );
}

#[tokio::test]
async fn amounts_are_exact_decimals_within_the_configured_bounds() {
    let app = TestApp::spawn().await;
    let bob = app.register("bob").await;
    for (amount, expected) in [
        (json!(1250.5), "1250.50"),
        (json!("1250.5"), "1250.50"),
        (json!(100), "100.00"),
        (json!("1000000.00"), "1000000.00"),
    ] {
        let response = app
            .post(
                "/loans/apply",
                Some(&bob.token),
                json!({ "amount": amount, "termMonths": 6 }),
            )
            .await;
        response.assert_status(201);
        assert_eq!(response.body["principal"], expected);
    }
    for amount in [
        json!(-5),
        json!(0),
        json!("0.00"),
        json!(99.99),
        json!("1000000.01"),
        json!(10.001),
        json!("12.345"),
        json!("NaN"),
        json!("1e3"),
        json!(true),
        json!(null),
        json!(""),
    ] {
        app.post(
            "/loans/apply",
            Some(&bob.token),
            json!({ "amount": amount, "termMonths": 6 }),
        )
        .await
        .assert_invalid_fields(&["amount"]);
    }
    for term in [json!(0), json!(361), json!(1.5), json!("12"), json!(-1)] {
        app.post(
            "/loans/apply",
            Some(&bob.token),
            json!({ "amount": "500", "termMonths": term }),
        )
        .await
        .assert_invalid_fields(&["termMonths"]);
    }
    app.post(
        "/loans/apply",
        Some(&bob.token),
        json!({ "purpose": "x".repeat(501) }),
    )
    .await
    .assert_invalid_fields(&["amount", "termMonths", "purpose"]);
    app.post(
        "/loans/apply",
        Some(&bob.token),
        json!({ "amount": "500", "termMonths": 6, "status": "APPROVED" }),
    )
    .await
    .assert_problem(400);
    app.call(
        axum::http::Method::POST,
        "/loans/apply",
        None,
        Some(json!({ "amount": "500", "termMonths": 6 })),
    )
    .await
    .assert_problem(401);
    let mine = app
        .get(&format!("/loans/user/{}", bob.id), &bob.token)
        .await;
    assert_eq!(
        mine.body["items"].as_array().map(Vec::len),
        Some(4),
        "only the valid applications exist"
    );
}

#[tokio::test]
async fn approval_generates_the_exact_annuity_schedule() {
    let app = TestApp::spawn().await;
    let carol = app.register("carol").await;
    let admin = app.admin().await;
    let loan_id = app.apply(&carol, "10000.00", 12).await;
    let loan = app
        .approve(
            &admin,
            loan_id,
            Some(json!({ "annualInterestRate": "12", "firstDueDate": "2026-02-15" })),
        )
        .await;
    assert_eq!(loan["status"], "APPROVED");
    assert_eq!(loan["annualInterestRate"], "12.0");
    assert_eq!(loan["installmentAmount"], "888.49");
    assert_eq!(loan["totalPayable"], "10661.86");
    assert_eq!(loan["totalPaid"], "0.00");
    assert_eq!(loan["outstanding"], "10661.86");
    assert_eq!(loan["penaltiesOutstanding"], "0.00");
    assert_eq!(loan["nextDueDate"], "2026-02-15");
    assert_eq!(loan["approvedBy"], json!(admin.id));
    assert_eq!(loan["approvedAt"], "2026-01-15T10:00:00Z");
    let expected: Vec<(i64, &str, &str, &str, &str)> = vec![
        (1, "2026-02-15", "788.49", "100.00", "888.49"),
        (2, "2026-03-15", "796.37", "92.12", "888.49"),
        (3, "2026-04-15", "804.34", "84.15", "888.49"),
        (4, "2026-05-15", "812.38", "76.11", "888.49"),
        (5, "2026-06-15", "820.51", "67.98", "888.49"),
        (6, "2026-07-15", "828.71", "59.78", "888.49"),
        (7, "2026-08-15", "837.00", "51.49", "888.49"),
        (8, "2026-09-15", "845.37", "43.12", "888.49"),
        (9, "2026-10-15", "853.82", "34.67", "888.49"),
        (10, "2026-11-15", "862.36", "26.13", "888.49"),
        (11, "2026-12-15", "870.98", "17.51", "888.49"),
        (12, "2027-01-15", "879.67", "8.80", "888.47"),
    ];
    let expected: Vec<(i64, String, String, String, String)> = expected
        .into_iter()
        .map(|(n, d, p, i, a)| (n, d.to_owned(), p.to_owned(), i.to_owned(), a.to_owned()))
        .collect();
    assert_eq!(schedule_rows(&loan), expected);
    for installment in loan["schedule"].as_array().expect("schedule") {
        assert_eq!(installment["status"], "PENDING");
        assert_eq!(installment["penalty"], "0.00");
        assert_eq!(installment["amountPaid"], "0.00");
    }
    let fetched = app.get(&format!("/loans/{loan_id}"), &carol.token).await;
    fetched.assert_status(200);
    assert_eq!(
        fetched.body, loan,
        "what approval answered is what is stored"
    );

    assert_eq!(app.notification_kinds(carol.id).await, ["LOAN_APPROVED"]);
    let audit = app.audit_rows("LOAN_APPROVED").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor_id, Some(admin.id));
    assert_eq!(audit[0].entity_id, Some(loan_id));
}

#[tokio::test]
async fn default_due_dates_keep_the_approval_day_clamped_to_month_end() {
    let app = TestApp::spawn().await;
    app.clock.set(start_time() + chrono::Duration::days(16)); // 2026-01-31
    let dan = app.register("dan").await;
    let admin = app.admin().await;
    let loan_id = app.apply(&dan, "1000.00", 3).await;
    let loan = app.approve(&admin, loan_id, None).await;
    let dates: Vec<String> = schedule_rows(&loan).into_iter().map(|row| row.1).collect();
    assert_eq!(dates, ["2026-02-28", "2026-03-31", "2026-04-30"]);
    assert_eq!(
        loan["annualInterestRate"], "12.0",
        "the rate quoted at application"
    );
}

#[tokio::test]
async fn interest_free_and_long_loans_have_exact_figures() {
    let app = TestApp::spawn().await;
    let erin = app.register("erin").await;
    let admin = app.admin().await;
    let free = app.apply(&erin, "1000.00", 3).await;
    let loan = app
        .approve(&admin, free, Some(json!({ "annualInterestRate": 0 })))
        .await;
    let rows: Vec<(String, String)> = schedule_rows(&loan)
        .into_iter()
        .map(|r| (r.2, r.3))
        .collect();
    assert_eq!(
        rows,
        [("333.33", "0.00"), ("333.33", "0.00"), ("333.34", "0.00")]
            .map(|(p, i)| (p.to_owned(), i.to_owned()))
    );
    assert_eq!(loan["installmentAmount"], "333.33");
    assert_eq!(loan["totalPayable"], "1000.00");
    assert_eq!(loan["annualInterestRate"], "0.0");

    let long = app.apply(&erin, "5000.00", 36).await;
    let loan = app
        .approve(
            &admin,
            long,
            Some(json!({ "annualInterestRate": "7.5", "firstDueDate": "2026-01-31" })),
        )
        .await;
    let rows = schedule_rows(&loan);
    assert_eq!(loan["installmentAmount"], "155.53");
    assert_eq!(loan["totalPayable"], "5599.10");
    assert_eq!(
        rows[0],
        (
            1,
            "2026-01-31".to_owned(),
            "124.28".to_owned(),
            "31.25".to_owned(),
            "155.53".to_owned()
        )
    );
    assert_eq!(rows[1].1, "2026-02-28");
    assert_eq!(rows[2].1, "2026-03-31");
    assert_eq!(rows[25].1, "2028-02-29");
    assert_eq!(
        rows[35],
        (
            36,
            "2028-12-31".to_owned(),
            "154.58".to_owned(),
            "0.97".to_owned(),
            "155.55".to_owned()
        )
    );
}

#[tokio::test]
async fn approval_terms_are_validated() {
    let app = TestApp::spawn().await;
    let fay = app.register("fay").await;
    let admin = app.admin().await;
    let loan_id = app.apply(&fay, "1000.00", 12).await;
    let path = format!("/loans/{loan_id}/approve");
    app.patch(
        &path,
        &admin.token,
        Some(json!({ "annualInterestRate": "100.5" })),
    )
    .await
    .assert_invalid_fields(&["annualInterestRate"]);
    app.patch(
        &path,
        &admin.token,
        Some(json!({ "annualInterestRate": "-1", "firstDueDate": "2027-01-16" })),
    )
    .await
    .assert_invalid_fields(&["annualInterestRate", "firstDueDate"]);
    app.patch(
        &path,
        &admin.token,
        Some(json!({ "firstDueDate": "2025-01-14" })),
    )
    .await
    .assert_invalid_fields(&["firstDueDate"]);
    app.patch(
        &path,
        &admin.token,
        Some(json!({ "firstDueDate": "15/02/2026" })),
    )
    .await
    .assert_invalid_fields(&["firstDueDate"]);
    app.patch(&path, &admin.token, Some(json!({ "rate": "5" })))
        .await
        .assert_problem(400);
    let still = app.get(&format!("/loans/{loan_id}"), &fay.token).await;
    assert_eq!(still.body["status"], "PENDING", "nothing changed");
    // A year back is allowed, for loans migrated in from elsewhere.
    let loan = app
        .approve(
            &admin,
            loan_id,
            Some(json!({ "firstDueDate": "2025-01-15" })),
        )
        .await;
    assert_eq!(loan["nextDueDate"], "2025-01-15");
}

#[tokio::test]
async fn only_admins_approve_and_only_pending_loans() {
    let app = TestApp::spawn().await;
    let gus = app.register("gus").await;
    let admin = app.admin().await;
    let manager = app.manager().await;
    let loan_id = app.apply(&gus, "2000.00", 6).await;
    let path = format!("/loans/{loan_id}/approve");
    app.patch(&path, &gus.token, None).await.assert_problem(403);
    app.patch(&path, &manager.token, None)
        .await
        .assert_problem(403);
    app.patch(
        &format!("/loans/{}/approve", uuid::Uuid::now_v7()),
        &admin.token,
        None,
    )
    .await
    .assert_problem(404);
    app.approve(&admin, loan_id, None).await;
    app.patch(&path, &admin.token, None)
        .await
        .assert_problem(409);
    app.patch(
        &format!("/loans/{loan_id}/reject"),
        &manager.token,
        Some(json!({ "reason": "late" })),
    )
    .await
    .assert_problem(409);
    app.patch(&format!("/loans/{loan_id}/cancel"), &gus.token, None)
        .await
        .assert_problem(409);
    let loan = app.get(&format!("/loans/{loan_id}"), &gus.token).await;
    assert_eq!(
        loan.body["schedule"].as_array().map(Vec::len),
        Some(6),
        "approved once"
    );
    assert_eq!(app.notification_kinds(gus.id).await, ["LOAN_APPROVED"]);
}

#[tokio::test]
async fn concurrent_approvals_of_one_loan_succeed_exactly_once() {
    let app = TestApp::spawn().await;
    let hal = app.register("hal").await;
    let admin = app.admin().await;
    for _ in 0..3 {
        let loan_id = app.apply(&hal, "3000.00", 24).await;
        let path = format!("/loans/{loan_id}/approve");
        let (a, b, c) = tokio::join!(
            app.patch(&path, &admin.token, None),
            app.patch(
                &path,
                &admin.token,
                Some(json!({ "annualInterestRate": "5" }))
            ),
            app.patch(&path, &admin.token, None),
        );
        let mut statuses = [a.status.as_u16(), b.status.as_u16(), c.status.as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409, 409]);
        let loan = app.get(&format!("/loans/{loan_id}"), &hal.token).await;
        assert_eq!(loan.body["schedule"].as_array().map(Vec::len), Some(24));
    }
    assert_eq!(app.audit_rows("LOAN_APPROVED").await.len(), 3);
    assert_eq!(app.notification_kinds(hal.id).await.len(), 3);
}

#[tokio::test]
async fn staff_reject_with_a_reason() {
    let app = TestApp::spawn().await;
    let ida = app.register("ida").await;
    let manager = app.manager().await;
    let loan_id = app.apply(&ida, "5000.00", 12).await;
    let path = format!("/loans/{loan_id}/reject");
    app.patch(&path, &ida.token, Some(json!({ "reason": "no" })))
        .await
        .assert_problem(403);
    app.patch(&path, &manager.token, Some(json!({})))
        .await
        .assert_invalid_fields(&["reason"]);
    app.patch(&path, &manager.token, Some(json!({ "reason": "   " })))
        .await
        .assert_invalid_fields(&["reason"]);
    app.patch(&path, &manager.token, None)
        .await
        .assert_problem(400);
    let rejected = app
        .patch(
            &path,
            &manager.token,
            Some(json!({ "reason": "Income too low" })),
        )
        .await;
    rejected.assert_status(200);
    assert_eq!(rejected.body["status"], "REJECTED");
    assert_eq!(rejected.body["rejectionReason"], "Income too low");
    assert_eq!(rejected.body["schedule"], json!([]));
    app.patch(&path, &manager.token, Some(json!({ "reason": "again" })))
        .await
        .assert_problem(409);
    app.patch(
        &format!("/loans/{loan_id}/approve"),
        &app.admin().await.token,
        None,
    )
    .await
    .assert_problem(409);
    assert_eq!(app.notification_kinds(ida.id).await, ["LOAN_REJECTED"]);
    let audit = app.audit_rows("LOAN_REJECTED").await;
    assert_eq!(audit[0].details, json!({ "reason": "Income too low" }));
}

#[tokio::test]
async fn only_the_borrower_cancels_and_only_while_pending() {
    let app = TestApp::spawn().await;
    let joe = app.register("joe").await;
    let kim = app.register("kim").await;
    let admin = app.admin().await;
    let loan_id = app.apply(&joe, "700.00", 7).await;
    let path = format!("/loans/{loan_id}/cancel");
    app.patch(&path, &kim.token, None).await.assert_problem(404);
    app.patch(&path, &admin.token, None)
        .await
        .assert_problem(403);
    let cancelled = app.patch(&path, &joe.token, None).await;
    cancelled.assert_status(200);
    assert_eq!(cancelled.body["status"], "CANCELLED");
    app.patch(&path, &joe.token, None).await.assert_problem(409);
    app.patch(&format!("/loans/{loan_id}/approve"), &admin.token, None)
        .await
        .assert_problem(409);
    assert_eq!(app.audit_rows("LOAN_CANCELLED").await.len(), 1);
    assert!(app.notification_kinds(joe.id).await.is_empty());
}

#[tokio::test]
async fn borrowers_see_only_their_own_loans() {
    let app = TestApp::spawn().await;
    let lea = app.register("lea").await;
    let max = app.register("max").await;
    let manager = app.manager().await;
    let admin = app.admin().await;
    let first = app.apply(&lea, "1000.00", 10).await;
    let second = app.apply(&lea, "2000.00", 20).await;
    let third = app.apply(&lea, "3000.00", 30).await;
    let other = app.apply(&max, "4000.00", 40).await;
    app.approve(&admin, second, None).await;

    app.get(&format!("/loans/{other}"), &lea.token)
        .await
        .assert_problem(404);
    app.get(&format!("/loans/{}", uuid::Uuid::now_v7()), &lea.token)
        .await
        .assert_problem(404);
    app.get(&format!("/loans/user/{}", max.id), &lea.token)
        .await
        .assert_problem(403);
    app.get("/loans", &lea.token).await.assert_problem(403);
    app.get(&format!("/loans/{other}"), &manager.token)
        .await
        .assert_status(200);

    let ids = |response: &crate::support::TestResponse| -> Vec<String> {
        response.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|l| l["id"].as_str().expect("id").to_owned())
            .collect()
    };
    let own = app
        .get(&format!("/loans/user/{}?limit=2", lea.id), &lea.token)
        .await;
    own.assert_status(200);
    assert_eq!(ids(&own), [third.to_string(), second.to_string()]);
    assert!(
        own.body["items"][0].get("schedule").is_none(),
        "lists carry no schedules"
    );
    let cursor = own.body["nextCursor"].as_str().expect("cursor");
    let rest = app
        .get(
            &format!("/loans/user/{}?limit=2&cursor={cursor}", lea.id),
            &lea.token,
        )
        .await;
    assert_eq!(ids(&rest), [first.to_string()]);
    assert_eq!(rest.body["nextCursor"], json!(null));

    let approved = app
        .get(
            &format!("/loans/user/{}?status=APPROVED", lea.id),
            &manager.token,
        )
        .await;
    assert_eq!(ids(&approved), [second.to_string()]);
    let pending = app.get("/loans?status=PENDING", &manager.token).await;
    assert_eq!(
        ids(&pending),
        [other.to_string(), third.to_string(), first.to_string()]
    );
    let all = app.get("/loans", &admin.token).await;
    assert_eq!(ids(&all).len(), 4);
    app.get("/loans?status=LATE", &admin.token)
        .await
        .assert_invalid_fields(&["status"]);
    app.get("/loans?limit=500", &admin.token)
        .await
        .assert_invalid_fields(&["limit"]);
}
