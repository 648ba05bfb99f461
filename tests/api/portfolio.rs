//! § Delinquency and the portfolio: days past due and buckets on every
//! loan, `?bucket=` on the lists, `GET /reports/portfolio` (JSON and CSV),
//! the gauges `overdue-check` refreshes.
//!
//! The test clock starts on 2026-01-15. A loan of 1000.00 at 12 % over 12
//! months pays 88.85 a month: #1 10.00 interest + 78.85 principal, #2 9.21
//! + 79.64; an unpaid installment's late fee is 5 % of 88.85 = 4.44.

use axum::http::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::servicing::{id_of, loan, moment, pay_with, reverse};
use crate::support::{TestApp, TestResponse, TestUser};

/// A loan of `amount` over `term` months at 12 %, its first installment
/// due `first_due` (a past date: a loan migrated in).
async fn approved_loan(
    app: &TestApp,
    borrower: &TestUser,
    admin: &TestUser,
    amount: &str,
    term: u32,
    first_due: &str,
) -> Uuid {
    let loan_id = app.apply(borrower, amount, term).await;
    app.approve(
        admin,
        loan_id,
        Some(json!({ "annualInterestRate": "12", "firstDueDate": first_due })),
    )
    .await;
    loan_id
}

async fn report(app: &TestApp, user: &TestUser) -> Value {
    let response = app.get("/reports/portfolio", &user.token).await;
    response.assert_status(200);
    response.body
}

/// `[bucket, loans, principalOutstanding]` rows of a report.
fn buckets(report: &Value) -> Vec<(String, i64, String)> {
    report["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|row| {
            (
                row["bucket"].as_str().expect("bucket").to_owned(),
                row["loans"].as_i64().expect("loans"),
                row["principalOutstanding"]
                    .as_str()
                    .expect("principal")
                    .to_owned(),
            )
        })
        .collect()
}

fn rows(expected: [(&str, i64, &str); 5]) -> Vec<(String, i64, String)> {
    expected
        .iter()
        .map(|(bucket, loans, principal)| ((*bucket).to_owned(), *loans, (*principal).to_owned()))
        .collect()
}

/// The ids a loan list answers, in its order.
async fn listed(app: &TestApp, user: &TestUser, path: &str) -> Vec<Uuid> {
    let response = app.get(path, &user.token).await;
    response.assert_status(200);
    response.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| Uuid::parse_str(item["id"].as_str().expect("id")).expect("uuid"))
        .collect()
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn every_bucket_boundary_and_the_portfolio_it_makes() {
    let app = TestApp::spawn().await;
    let borrower = app.register("borrower").await;
    let admin = app.admin().await;
    let manager = app.manager().await;
    // One loan per boundary: first due `days` before today (2026-01-15),
    // nothing paid, so that is its days past due.
    let boundaries: [(i64, &str, &str); 8] = [
        (0, "2026-01-15", "CURRENT"),
        (1, "2026-01-14", "1-30"),
        (30, "2025-12-16", "1-30"),
        (31, "2025-12-15", "31-60"),
        (60, "2025-11-16", "31-60"),
        (61, "2025-11-15", "61-90"),
        (90, "2025-10-17", "61-90"),
        (91, "2025-10-16", "91+"),
    ];
    let mut loans = Vec::new();
    for (days, first_due, bucket) in boundaries {
        let loan_id = approved_loan(&app, &borrower, &admin, "1000.00", 12, first_due).await;
        let view = loan(&app, &borrower, loan_id).await;
        assert_eq!(view["daysPastDue"], json!(days), "{first_due}");
        assert_eq!(view["delinquencyBucket"], bucket, "{first_due}");
        loans.push((loan_id, bucket));
    }
    // Loans that are not APPROVED/OVERDUE have no bucket.
    let paid = approved_loan(&app, &borrower, &admin, "500.00", 1, "2026-02-15").await;
    app.pay(&borrower, paid, json!("505.00"), None)
        .await
        .assert_status(201);
    let pending = app.apply(&borrower, "700.00", 6).await;
    let rejected = app.apply(&borrower, "800.00", 6).await;
    app.patch(
        &format!("/loans/{rejected}/reject"),
        &manager.token,
        Some(json!({ "reason": "income not verified" })),
    )
    .await
    .assert_status(200);
    let cancelled = app.apply(&borrower, "900.00", 6).await;
    app.patch(&format!("/loans/{cancelled}/cancel"), &borrower.token, None)
        .await
        .assert_status(200);
    for loan_id in [paid, pending, rejected, cancelled] {
        let view = loan(&app, &borrower, loan_id).await;
        assert_eq!(view["daysPastDue"], 0);
        assert_eq!(view["delinquencyBucket"], json!(null));
    }

    // ?bucket= on both lists; lists carry the same fields.
    for bucket in ["CURRENT", "1-30", "31-60", "61-90"] {
        let expected: Vec<Uuid> = loans
            .iter()
            .filter(|(_, b)| *b == bucket)
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(
            sorted(listed(&app, &admin, &format!("/loans?bucket={bucket}")).await),
            sorted(expected.clone()),
            "{bucket}"
        );
        assert_eq!(
            sorted(
                listed(
                    &app,
                    &borrower,
                    &format!("/loans/user/{}?bucket={bucket}", borrower.id)
                )
                .await
            ),
            sorted(expected),
            "{bucket}"
        );
    }
    let oldest = loans[7].0;
    // `91+` encoded, or as typed (a query string reads `+` as a space).
    assert_eq!(
        listed(&app, &admin, "/loans?bucket=91%2B").await,
        vec![oldest]
    );
    assert_eq!(
        listed(&app, &admin, "/loans?bucket=91+").await,
        vec![oldest]
    );
    assert_eq!(
        listed(&app, &admin, "/loans?bucket=91%2B&status=OVERDUE").await,
        vec![oldest]
    );
    assert!(
        listed(&app, &admin, "/loans?bucket=91%2B&status=PAID")
            .await
            .is_empty()
    );
    let page = app.get("/loans?bucket=1-30&limit=100", &admin.token).await;
    for item in page.body["items"].as_array().expect("items") {
        assert_eq!(item["delinquencyBucket"], "1-30");
    }
    for bad in ["current", "0", "91", "1-31", ""] {
        app.get(&format!("/loans?bucket={bad}"), &admin.token)
            .await
            .assert_invalid_fields(&["bucket"]);
    }

    // The report: counts per status, 8 × 1000.00 + 500.00 disbursed, the
    // paid loan's 5.00 of interest collected; PAR30 = 5000 ÷ 8000, PAR90 =
    // 1000 ÷ 8000.
    let book = report(&app, &manager).await;
    assert_eq!(
        book["loansByStatus"],
        json!({ "PENDING": 1, "APPROVED": 1, "OVERDUE": 7, "PAID": 1, "REJECTED": 1, "CANCELLED": 1, "WRITTEN_OFF": 0 })
    );
    assert_eq!(book["asOf"], "2026-01-15");
    assert_eq!(book["currency"], "USD");
    assert_eq!(book["principalDisbursed"], "8500.00");
    assert_eq!(book["principalOutstanding"], "8000.00");
    assert_eq!(book["principalWrittenOff"], "0.00");
    assert_eq!(book["recoveries"], "0.00");
    assert_eq!(book["interestCollected"], "5.00");
    assert_eq!(book["penaltiesCollected"], "0.00");
    assert_eq!(
        buckets(&book),
        rows([
            ("CURRENT", 1, "1000.00"),
            ("1-30", 2, "2000.00"),
            ("31-60", 2, "2000.00"),
            ("61-90", 2, "2000.00"),
            ("91+", 1, "1000.00"),
        ])
    );
    assert_eq!(book["par30"], "0.6250");
    assert_eq!(book["par90"], "0.1250");

    let csv = csv_of(&app, &admin).await;
    csv.assert_status(200);
    assert_eq!(csv.header("content-type"), Some("text/csv"));
    assert_eq!(csv.header("vary"), Some("accept"));
    assert_eq!(
        csv.text,
        "bucket,loans,principalOutstanding\n\
         CURRENT,1,1000.00\n\
         1-30,2,2000.00\n\
         31-60,2,2000.00\n\
         61-90,2,2000.00\n\
         91+,1,1000.00\n"
    );

    // A borrower sees no portfolio, and no one else's loans by bucket.
    app.get("/reports/portfolio", &borrower.token)
        .await
        .assert_problem(403);
    let stranger = app.register("stranger").await;
    app.get(
        &format!("/loans/user/{}?bucket=91%2B", borrower.id),
        &stranger.token,
    )
    .await
    .assert_problem(403);
}

async fn csv_of(app: &TestApp, user: &TestUser) -> TestResponse {
    app.send(
        axum::http::Request::builder()
            .method(Method::GET)
            .uri("/reports/portfolio")
            .header("authorization", format!("Bearer {}", user.token))
            .header("accept", "text/csv")
            .body(axum::body::Body::empty())
            .expect("request"),
    )
    .await
}

#[tokio::test]
async fn the_report_moves_exactly_with_a_payment_a_reversal_and_a_backdated_payment() {
    let app = TestApp::spawn().await;
    let borrower = app.register("borrower").await;
    let admin = app.admin().await;
    let manager = app.manager().await;

    // Nothing at all: nothing outstanding, PAR "0.0000".
    let empty = report(&app, &manager).await;
    assert_eq!(empty["principalOutstanding"], "0.00");
    assert_eq!(empty["par30"], "0.0000");
    assert_eq!(empty["par90"], "0.0000");
    assert!(
        buckets(&empty)
            .iter()
            .all(|(_, loans, principal)| *loans == 0 && principal == "0.00")
    );

    // Migrated in 91 days late: #1 (2025-10-16), #2 and #3 unpaid, each
    // with its 4.44 fee.
    let loan_id = approved_loan(&app, &borrower, &admin, "1000.00", 12, "2025-10-16").await;
    let before = report(&app, &manager).await;
    assert_eq!(
        buckets(&before),
        rows([
            ("CURRENT", 0, "0.00"),
            ("1-30", 0, "0.00"),
            ("31-60", 0, "0.00"),
            ("61-90", 0, "0.00"),
            ("91+", 1, "1000.00"),
        ])
    );
    assert_eq!(
        (before["par30"].clone(), before["par90"].clone()),
        (json!("1.0000"), json!("1.0000"))
    );

    // #1 with its fee, today: the oldest unpaid is #2 (2025-11-16), 60
    // days ago; 78.85 of principal repaid.
    let payment = app.pay(&borrower, loan_id, json!("93.29"), None).await;
    payment.assert_status(201);
    let after_payment = report(&app, &manager).await;
    assert_eq!(
        buckets(&after_payment)[2],
        ("31-60".to_owned(), 1, "921.15".to_owned())
    );
    assert_eq!(after_payment["principalOutstanding"], "921.15");
    assert_eq!(after_payment["interestCollected"], "10.00");
    assert_eq!(after_payment["penaltiesCollected"], "4.44");
    assert_eq!(after_payment["par30"], "1.0000");
    assert_eq!(after_payment["par90"], "0.0000");
    assert_eq!(loan(&app, &borrower, loan_id).await["daysPastDue"], 60);

    // Reversed: back where it was.
    reverse(&app, &admin, &id_of(&payment.body), "bounced")
        .await
        .assert_status(200);
    let after_reversal = report(&app, &manager).await;
    assert_eq!(buckets(&after_reversal), buckets(&before));
    assert_eq!(after_reversal["interestCollected"], "0.00");
    assert_eq!(after_reversal["penaltiesCollected"], "0.00");
    assert_eq!(loan(&app, &borrower, loan_id).await["daysPastDue"], 91);

    // The transfer that paid #1 on its due date turns up: #1 was never
    // late, its fee goes, and the loan is 60 days past due (#2).
    pay_with(
        &app,
        &manager,
        loan_id,
        json!({ "amount": "88.85", "valueDate": "2025-10-16" }),
    )
    .await
    .assert_status(201);
    let after_backdated = report(&app, &manager).await;
    assert_eq!(
        buckets(&after_backdated)[2],
        ("31-60".to_owned(), 1, "921.15".to_owned())
    );
    assert_eq!(after_backdated["interestCollected"], "10.00");
    assert_eq!(after_backdated["penaltiesCollected"], "0.00");
    assert_eq!(
        listed(&app, &admin, "/loans?bucket=31-60").await,
        vec![loan_id]
    );
    assert!(listed(&app, &admin, "/loans?bucket=91%2B").await.is_empty());

    // A day later the same loan is 61 days past due: the bucket follows
    // the calendar without any write.
    app.clock.set(moment("2026-01-16"));
    let next_day = report(&app, &manager).await;
    assert_eq!(
        buckets(&next_day)[3],
        ("61-90".to_owned(), 1, "921.15".to_owned())
    );
    assert_eq!(
        loan(&app, &borrower, loan_id).await["delinquencyBucket"],
        "61-90"
    );
}

#[tokio::test]
async fn the_delinquency_gauges_are_exported_after_overdue_check() {
    let app = TestApp::spawn().await;
    let borrower = app.register("borrower").await;
    let admin = app.admin().await;
    approved_loan(&app, &borrower, &admin, "1000.00", 12, "2025-10-16").await;
    app.run_job(&admin, "overdue-check", "2026-01-15").await;
    let scrape = app.call(Method::GET, "/metrics", None, None).await;
    scrape.assert_status(200);
    // The job sets them, and so does every scrape. The recorder is shared
    // by every test in this process, so only the series are checked here;
    // the figures are the report's, tested above.
    for bucket in ["CURRENT", "1-30", "31-60", "61-90", "91+"] {
        for gauge in ["loans_by_bucket", "principal_outstanding_minor"] {
            let series = format!("{gauge}{{bucket=\"{bucket}\"}} ");
            assert!(
                scrape.text.lines().any(|line| line.starts_with(&series)),
                "{series} in\n{}",
                scrape.text
            );
        }
    }
    // Written-off loans are in no bucket; their gauges stand beside.
    for gauge in ["loans_written_off", "principal_written_off_minor"] {
        assert!(
            scrape
                .text
                .lines()
                .any(|line| line.starts_with(&format!("{gauge} "))),
            "{gauge} in\n{}",
            scrape.text
        );
    }
}

#[tokio::test]
async fn the_cli_prints_the_same_report_as_json_or_csv() {
    let app = TestApp::spawn().await;
    let borrower = app.register("borrower").await;
    let admin = app.admin().await;
    // The CLI reads the system clock, which is at least this app's
    // 2026-01-15: a loan first due on 2025-10-16 is 91+ days late either
    // way.
    approved_loan(&app, &borrower, &admin, "1000.00", 12, "2025-10-16").await;
    let run = |format: &'static str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_loan-tracker"))
            .args(["report", "portfolio", "--format", format])
            .env_clear()
            .envs(&app.vars)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
    };
    let csv = run("csv").await.expect("run the CLI");
    assert!(
        csv.status.success(),
        "{}",
        String::from_utf8_lossy(&csv.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&csv.stdout),
        "bucket,loans,principalOutstanding\n\
         CURRENT,0,0.00\n\
         1-30,0,0.00\n\
         31-60,0,0.00\n\
         61-90,0,0.00\n\
         91+,1,1000.00\n"
    );
    let json = run("json").await.expect("run the CLI");
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let printed: Value = serde_json::from_slice(&json.stdout).expect("JSON on stdout");
    assert_eq!(printed["loansByStatus"]["OVERDUE"], 1);
    assert_eq!(printed["principalOutstanding"], "1000.00");
    assert_eq!(printed["par30"], "1.0000");
    assert_eq!(printed["par90"], "1.0000");
    let bad = run("xml").await.expect("run the CLI");
    assert!(!bad.status.success());
}

#[tokio::test]
async fn a_prepayment_and_a_settlement_move_the_report_by_the_principal_they_repay() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    let manager = app.manager().await;
    app.clock.set(moment("2026-02-15"));
    // #1 (788.49 + 100.00) and 2000.00 prepaid: 7211.51 of principal left,
    // owed by installments #2–#10 (tests/golden/reamortize.py).
    pay_with(
        &app,
        &borrower,
        loan_id,
        json!({ "amount": "2888.49", "excess": "REDUCE_TERM" }),
    )
    .await
    .assert_status(201);
    let prepaid = report(&app, &manager).await;
    assert_eq!(prepaid["principalOutstanding"], "7211.51");
    assert_eq!(prepaid["interestCollected"], "100.00");
    assert_eq!(
        buckets(&prepaid)[0],
        ("CURRENT".to_owned(), 1, "7211.51".to_owned())
    );

    // Settled on 2026-03-01: 7211.51 + #2's accrued 36.06
    // (tests/golden/payoff.py); nothing outstanding, the rest waived.
    app.clock.set(moment("2026-03-01"));
    let settled = app
        .send(crate::servicing::post_request(
            &format!("/loans/{loan_id}/settle"),
            &borrower.token,
            &json!({ "amount": "7247.57" }),
            None,
        ))
        .await;
    settled.assert_status(201);
    let closed = report(&app, &manager).await;
    assert_eq!(closed["loansByStatus"]["PAID"], 1);
    assert_eq!(closed["principalDisbursed"], "10000.00");
    assert_eq!(closed["principalOutstanding"], "0.00");
    assert_eq!(closed["interestCollected"], "136.06");
    assert_eq!(closed["par30"], "0.0000");
    assert!(buckets(&closed).iter().all(|(_, loans, _)| *loans == 0));

    // Reversing the settlement reopens the loan: 7211.51 outstanding again.
    reverse(&app, &admin, &id_of(&settled.body), "recalled")
        .await
        .assert_status(200);
    let reopened = report(&app, &manager).await;
    assert_eq!(reopened["principalOutstanding"], "7211.51");
    assert_eq!(reopened["interestCollected"], "100.00");
}
