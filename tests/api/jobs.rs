//! The scheduled jobs, run for chosen days: reminders, overdue marking and
//! late fees, audit archiving, and the once-per-period claim.

use chrono::TimeZone;
use loan_tracker::jobs::JobName;
use loan_tracker::jobs::scheduler::run_tick;
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, TestUser, test_user};

fn counts(report: &Value, names: &[&str]) -> Vec<u64> {
    names
        .iter()
        .map(|name| report[*name].as_u64().unwrap_or(u64::MAX))
        .collect()
}

async fn kinds(app: &TestApp, user: &TestUser) -> Vec<String> {
    app.notification_kinds(user.id).await
}

#[tokio::test]
async fn reminders_go_out_on_the_right_days_and_never_twice() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;

    let early = app.run_job(&admin, "payment-reminders", "2026-02-11").await;
    assert_eq!(early["job"], "payment-reminders");
    assert_eq!(early["asOf"], "2026-02-11");
    assert_eq!(
        (
            early["processed"].as_u64(),
            early["remindersWritten"].as_u64()
        ),
        (Some(0), Some(0))
    );

    let three_days = app.run_job(&admin, "payment-reminders", "2026-02-12").await;
    assert_eq!(
        counts(&three_days, &["processed", "remindersWritten", "failed"]),
        [1, 1, 0]
    );
    let again = app.run_job(&admin, "payment-reminders", "2026-02-12").await;
    assert_eq!(
        counts(&again, &["processed", "remindersWritten"]),
        [1, 0],
        "never twice"
    );
    let in_between = app.run_job(&admin, "payment-reminders", "2026-02-13").await;
    assert_eq!(counts(&in_between, &["remindersWritten"]), [0]);
    let tomorrow = app.run_job(&admin, "payment-reminders", "2026-02-14").await;
    assert_eq!(counts(&tomorrow, &["remindersWritten"]), [1]);
    app.run_job(&admin, "payment-reminders", "2026-02-14").await;

    let reminders: Vec<(String, String)> = app
        .notifications(borrower.id)
        .await
        .into_iter()
        .filter(|n| {
            n.dedup_key
                .as_deref()
                .is_some_and(|k| k.starts_with("due-soon:"))
        })
        .map(|n| (n.title, n.message))
        .collect();
    assert_eq!(
        reminders,
        [
            (
                "Payment due in 3 days".to_owned(),
                "Installment #1 of your loan, 888.49 USD, is due in 3 days (2026-02-15)."
                    .to_owned()
            ),
            (
                "Payment due tomorrow".to_owned(),
                "Installment #1 of your loan, 888.49 USD, is due tomorrow (2026-02-15).".to_owned()
            ),
        ]
    );

    // A paid installment is not reminded of.
    app.pay(&borrower, loan_id, json!("1776.98"), None)
        .await
        .assert_status(201);
    let paid = app.run_job(&admin, "payment-reminders", "2026-03-12").await;
    assert_eq!(counts(&paid, &["processed", "remindersWritten"]), [0, 0]);
    let next = app.run_job(&admin, "payment-reminders", "2026-04-12").await;
    assert_eq!(counts(&next, &["remindersWritten"]), [1]);
}

#[tokio::test]
async fn overdue_check_marks_charges_once_and_is_idempotent() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    let names = [
        "installmentsMarkedOverdue",
        "penaltiesApplied",
        "loansMarkedOverdue",
        "notificationsWritten",
        "failed",
    ];

    let on_due_date = app.run_job(&admin, "overdue-check", "2026-02-15").await;
    assert_eq!(on_due_date["processed"], 0, "due today is not overdue yet");

    let first = app.run_job(&admin, "overdue-check", "2026-02-16").await;
    assert_eq!(first["processed"], 1);
    assert_eq!(counts(&first, &names), [1, 1, 1, 2, 0]);
    let loan = app.loan_body(&admin.token, &loan_id).await;
    assert_eq!(loan["status"], "OVERDUE");
    // 5 % of the 888.49 owed is 44.4245, which rounds to 44.42.
    assert_eq!(loan["penaltiesOutstanding"], "44.42");
    assert_eq!(loan["outstanding"], "10706.28");
    assert_eq!(loan["schedule"][0]["status"], "OVERDUE");
    assert_eq!(loan["schedule"][0]["penalty"], "44.42");
    assert_eq!(loan["schedule"][0]["amountDue"], "932.91");
    assert_eq!(loan["schedule"][1]["status"], "PENDING");
    assert_eq!(
        kinds(&app, &borrower).await,
        ["LOAN_APPROVED", "PAYMENT_OVERDUE", "PENALTY_APPLIED"]
    );
    let penalty_audit = app.audit_rows("PENALTY_APPLIED").await;
    assert_eq!(penalty_audit.len(), 1);
    // Run through the API: the admin and the request are on record.
    assert_eq!(penalty_audit[0].actor_id, Some(admin.id));
    assert!(penalty_audit[0].request_id.is_some());
    assert_eq!(
        penalty_audit[0].details,
        json!({ "installmentNumber": 1, "previous": "0.00", "penalty": "44.42" })
    );
    assert_eq!(app.audit_rows("LOAN_OVERDUE").await.len(), 1);

    let second = app.run_job(&admin, "overdue-check", "2026-02-16").await;
    assert_eq!(
        counts(&second, &names),
        [0, 0, 0, 0, 0],
        "the second run changes nothing"
    );
    let later = app.run_job(&admin, "overdue-check", "2026-03-01").await;
    assert_eq!(
        counts(&later, &names),
        [0, 0, 0, 0, 0],
        "the fee is applied once, ever"
    );
    assert_eq!(kinds(&app, &borrower).await.len(), 3);

    let next_month = app.run_job(&admin, "overdue-check", "2026-03-16").await;
    assert_eq!(counts(&next_month, &names), [1, 1, 0, 2, 0]);
    let loan = app.loan_body(&admin.token, &loan_id).await;
    assert_eq!(loan["penaltiesOutstanding"], "88.84");
    let overdue = app
        .get("/payments/overdue?asOf=2026-03-16", &admin.token)
        .await;
    let penalties: Vec<&str> = overdue.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["penalty"].as_str().expect("penalty"))
        .collect();
    assert_eq!(penalties, ["44.42", "44.42"]);
}

#[tokio::test]
async fn the_fee_is_on_what_is_still_owed_and_waits_for_the_grace_period() {
    let app = TestApp::builder()
        .env("LATE_FEE_PERCENT", "2.5")
        .env("LATE_FEE_GRACE_DAYS", "3")
        .build()
        .await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    app.pay(&borrower, loan_id, json!("100.00"), None)
        .await
        .assert_status(201);

    let day_one = app.run_job(&admin, "overdue-check", "2026-02-16").await;
    assert_eq!(
        counts(&day_one, &["installmentsMarkedOverdue", "penaltiesApplied"]),
        [1, 0]
    );
    let day_three = app.run_job(&admin, "overdue-check", "2026-02-18").await;
    assert_eq!(
        counts(
            &day_three,
            &["installmentsMarkedOverdue", "penaltiesApplied"]
        ),
        [0, 0]
    );
    let day_four = app.run_job(&admin, "overdue-check", "2026-02-19").await;
    assert_eq!(
        counts(
            &day_four,
            &[
                "installmentsMarkedOverdue",
                "penaltiesApplied",
                "notificationsWritten"
            ]
        ),
        [0, 1, 1]
    );
    let loan = app.loan_body(&admin.token, &loan_id).await;
    // 2.5 % of the 788.49 still owed is 19.71225 → 19.71.
    assert_eq!(loan["schedule"][0]["penalty"], "19.71");
    assert_eq!(loan["schedule"][0]["amountPaid"], "100.00");
    assert_eq!(
        kinds(&app, &borrower).await,
        [
            "LOAN_APPROVED",
            "PAYMENT_RECEIVED",
            "PAYMENT_OVERDUE",
            "PENALTY_APPLIED"
        ]
    );
}

#[tokio::test]
async fn a_late_payment_pays_the_fee_first_and_the_loan_is_current_again() {
    let app = TestApp::spawn().await;
    let (_, admin, loan_id) = app.golden_loan().await;
    app.run_job(&admin, "overdue-check", "2026-02-16").await;
    app.clock.set(
        chrono::Utc
            .with_ymd_and_hms(2026, 2, 17, 9, 0, 0)
            .single()
            .expect("time"),
    );
    let borrower = test_user(
        &app.login(json!({ "username": "borrower", "password": PASSWORD }))
            .await
            .body,
    );
    let admin = test_user(
        &app.login(json!({ "username": "admin", "password": PASSWORD }))
            .await
            .body,
    );
    let payment = app.pay(&borrower, loan_id, json!("932.91"), None).await;
    payment.assert_status(201);
    assert_eq!(payment.body["penaltyPortion"], "44.42");
    assert_eq!(payment.body["interestPortion"], "100.00");
    assert_eq!(payment.body["principalPortion"], "788.49");
    assert_eq!(payment.body["loanStatus"], "APPROVED");
    let loan = app.loan_body(&borrower.token, &loan_id).await;
    assert_eq!(loan["status"], "APPROVED");
    assert_eq!(loan["penaltiesOutstanding"], "0.00");
    assert_eq!(loan["schedule"][0]["status"], "PAID");
    // Paid: the next check leaves it alone.
    let next = app.run_job(&admin, "overdue-check", "2026-02-18").await;
    assert_eq!(next["processed"], 0);
}

#[tokio::test]
async fn old_audit_entries_move_to_the_archive() {
    let app = TestApp::builder()
        .env("AUDIT_RETENTION_DAYS", "30")
        .build()
        .await;
    let admin = app.admin().await;
    app.register("someone").await;
    let live_before = app.count("audit_logs").await;
    assert_eq!(live_before, 2);

    let too_soon = app.run_job(&admin, "audit-archive", "2026-02-13").await;
    assert_eq!(counts(&too_soon, &["processed", "archived"]), [0, 0]);
    let moved = app.run_job(&admin, "audit-archive", "2026-02-15").await;
    assert_eq!(counts(&moved, &["processed", "archived"]), [2, 2]);
    assert_eq!(app.count("audit_logs").await, 0);
    assert_eq!(app.count("audit_logs_archive").await, 2);
    let again = app.run_job(&admin, "audit-archive", "2026-02-15").await;
    assert_eq!(counts(&again, &["archived"]), [0]);
    assert_eq!(app.count("audit_logs_archive").await, 2);
}

#[tokio::test]
async fn two_instances_run_a_scheduled_period_once() {
    let app = TestApp::builder()
        .env("SCHEDULER_ENABLED", "false")
        .build()
        .await;
    app.golden_loan().await;
    let other = app.second_instance().await;
    let tick = chrono_tz::UTC
        .with_ymd_and_hms(2026, 2, 16, 0, 5, 0)
        .single()
        .expect("tick");
    let (first, second) = tokio::join!(
        run_tick(&app.state, JobName::OverdueCheck, tick),
        run_tick(&other, JobName::OverdueCheck, tick),
    );
    let reports: Vec<_> = [first.expect("tick ran"), second.expect("tick ran")]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(reports.len(), 1, "exactly one instance ran the tick");
    assert_eq!(reports[0].as_of.to_string(), "2026-02-16");
    assert_eq!(reports[0].count("penaltiesApplied"), 1);
    assert!(
        run_tick(&other, JobName::OverdueCheck, tick)
            .await
            .expect("tick")
            .is_none()
    );
    let next_day = chrono_tz::UTC
        .with_ymd_and_hms(2026, 2, 17, 0, 5, 0)
        .single()
        .expect("tick");
    assert!(
        run_tick(&other, JobName::OverdueCheck, next_day)
            .await
            .expect("tick")
            .is_some()
    );
    assert_eq!(app.count("job_runs").await, 2);
}

#[tokio::test]
async fn only_admins_run_jobs_and_only_known_ones() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let manager = app.manager().await;
    let user = app.register("plain").await;
    app.post(
        "/admin/jobs/overdue-check/run",
        Some(&user.token),
        json!({}),
    )
    .await
    .assert_problem(403);
    app.post(
        "/admin/jobs/overdue-check/run",
        Some(&manager.token),
        json!({}),
    )
    .await
    .assert_problem(403);
    app.post("/admin/jobs/make-coffee/run", Some(&admin.token), json!({}))
        .await
        .assert_problem(404);
    app.post(
        "/admin/jobs/overdue-check/run",
        Some(&admin.token),
        json!({ "asOf": "16/02/2026" }),
    )
    .await
    .assert_invalid_fields(&["asOf"]);
    // The books never run ahead of the calendar: tomorrow is refused, and
    // nothing runs.
    let runs_before = app.count("job_runs").await;
    let ahead = app
        .post(
            "/admin/jobs/overdue-check/run",
            Some(&admin.token),
            json!({ "asOf": "2026-01-16" }),
        )
        .await;
    ahead.assert_invalid_fields(&["asOf"]);
    assert_eq!(
        ahead.body["errors"][0]["message"],
        "must not be after today (2026-01-15)"
    );
    assert_eq!(app.count("job_runs").await, runs_before);
    let today = app
        .call(
            axum::http::Method::POST,
            "/admin/jobs/audit-archive/run",
            Some(&admin.token),
            None,
        )
        .await;
    today.assert_status(200);
    assert_eq!(
        today.body["asOf"], "2026-01-15",
        "today in the service time zone"
    );
}

#[tokio::test]
async fn the_cli_runs_the_same_job() {
    let app = TestApp::spawn().await;
    let (borrower, _, loan_id) = app.golden_loan().await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_loan-tracker"))
        .args(["jobs", "run", "overdue-check", "--as-of", "2026-02-16"])
        .env_clear()
        .envs(&app.vars)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .expect("run the CLI");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON report on stdout");
    assert_eq!(report["job"], "overdue-check");
    assert_eq!(report["penaltiesApplied"], 1);
    // A read shows the loan as of the app's today: move it to the job's day.
    app.clock.set(
        chrono::NaiveDate::from_ymd_opt(2026, 2, 16)
            .and_then(|day| day.and_hms_opt(10, 0, 0))
            .expect("a time")
            .and_utc(),
    );
    let loan = app.loan_body(&borrower.token, &loan_id).await;
    assert_eq!(loan["status"], "OVERDUE");

    let ahead = tokio::process::Command::new(env!("CARGO_BIN_EXE_loan-tracker"))
        .args(["jobs", "run", "overdue-check", "--as-of", "2999-01-01"])
        .env_clear()
        .envs(&app.vars)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .expect("run the CLI");
    assert!(!ahead.status.success());
    assert!(
        String::from_utf8_lossy(&ahead.stderr).contains("--as-of must not be after today"),
        "{}",
        String::from_utf8_lossy(&ahead.stderr)
    );

    let unknown = tokio::process::Command::new(env!("CARGO_BIN_EXE_loan-tracker"))
        .args(["jobs", "run", "nap-time"])
        .env_clear()
        .envs(&app.vars)
        .output()
        .await
        .expect("run the CLI");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown job"));
}

#[tokio::test]
async fn a_loan_that_fails_is_left_for_the_next_run_and_the_rest_go_on() {
    let app = TestApp::spawn().await;
    let (_, admin, good) = app.golden_loan().await;
    let other = app.register("other").await;
    let bad = app.apply(&other, "10000.00", 12).await;
    app.approve(
        &admin,
        bad,
        Some(json!({ "annualInterestRate": "12", "firstDueDate": "2026-02-15" })),
    )
    .await;
    // A trigger makes every update of the bad loan's installments fail.
    if app.state.db.is_postgres() {
        app.sql(&format!(
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql; \
             CREATE TRIGGER refuse_bad BEFORE UPDATE ON installments FOR EACH ROW \
             WHEN (NEW.loan_id = '{bad}') EXECUTE FUNCTION refuse()"
        ))
        .await;
    } else {
        app.sql(&format!(
            "CREATE TRIGGER refuse_bad BEFORE UPDATE ON installments WHEN NEW.loan_id = X'{}' \
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
            bad.simple()
        ))
        .await;
    }
    let report = app.run_job(&admin, "overdue-check", "2026-02-16").await;
    assert_eq!(
        counts(
            &report,
            &[
                "processed",
                "installmentsMarkedOverdue",
                "penaltiesApplied",
                "failed"
            ]
        ),
        [2, 1, 1, 1]
    );
    let good_loan = app.get(&format!("/loans/{good}"), &admin.token).await.body;
    assert_eq!(good_loan["status"], "OVERDUE");
    // The list shows the stored state (a single-loan read computes today's).
    let stored = app
        .get(&format!("/loans/user/{}", other.id), &admin.token)
        .await
        .body;
    assert_eq!(
        stored["items"][0]["status"], "APPROVED",
        "nothing of the failed loan was written"
    );
    assert_eq!(stored["items"][0]["penaltiesOutstanding"], "0.00");

    if app.state.db.is_postgres() {
        app.sql("DROP TRIGGER refuse_bad ON installments; DROP FUNCTION refuse()")
            .await;
    } else {
        app.sql("DROP TRIGGER refuse_bad").await;
    }
    let retry = app.run_job(&admin, "overdue-check", "2026-02-16").await;
    assert_eq!(
        counts(
            &retry,
            &["installmentsMarkedOverdue", "penaltiesApplied", "failed"]
        ),
        [1, 1, 0]
    );
    let bad_loan = app.get(&format!("/loans/{bad}"), &admin.token).await.body;
    assert_eq!(bad_loan["status"], "OVERDUE");
    assert_eq!(bad_loan["penaltiesOutstanding"], "44.42");
}

#[tokio::test]
async fn overdue_check_pages_through_more_rows_than_a_batch() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let borrower = app.register("many").await;
    // 55 loans of 12 installments, all due in 2026 and unpaid a year on:
    // 660 overdue rows, more than one page of 500, with loans whose
    // installments span two pages.
    for n in 0..55 {
        let loan_id = app.apply(&borrower, "1200.00", 12).await;
        let first_due = format!("2026-01-{:02}", 16 + (n % 12));
        app.approve(
            &admin,
            loan_id,
            Some(json!({ "annualInterestRate": "0", "firstDueDate": first_due })),
        )
        .await;
    }
    let report = app.run_job(&admin, "overdue-check", "2027-01-15").await;
    assert_eq!(
        counts(
            &report,
            &[
                "processed",
                "installmentsMarkedOverdue",
                "penaltiesApplied",
                "loansMarkedOverdue",
                "failed"
            ]
        ),
        [660, 660, 660, 55, 0]
    );
    // Each fee is 5 % of 100.00; each loan owes twelve of them.
    let loans = app
        .get(
            &format!("/loans/user/{}?limit=100&status=OVERDUE", borrower.id),
            &admin.token,
        )
        .await;
    let items = loans.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 55);
    assert!(
        items
            .iter()
            .all(|loan| loan["penaltiesOutstanding"] == "60.00")
    );
    let again = app.run_job(&admin, "overdue-check", "2027-01-15").await;
    assert_eq!(
        counts(
            &again,
            &["processed", "installmentsMarkedOverdue", "penaltiesApplied"]
        ),
        [660, 0, 0]
    );
}

/// Thirty years on, twelve 360-month loans nobody repaid have 4 320
/// overdue installments: each statement of the job stays within what the
/// database can bind, so no batch fails and falls back to loan by loan.
#[tokio::test]
async fn a_huge_overdue_batch_fits_the_databases_statement_limits() {
    let app = TestApp::spawn().await;
    let borrower = app.register("longterm").await;
    let admin = app.admin().await;
    for _ in 0..12 {
        let loan_id = app.apply(&borrower, "100000.00", 360).await;
        app.approve(&admin, loan_id, None).await;
    }
    app.clock.set(
        chrono::Utc
            .with_ymd_and_hms(2056, 3, 1, 10, 0, 0)
            .single()
            .expect("time"),
    );
    let admin = test_user(
        &app.login(json!({ "username": "admin", "password": PASSWORD }))
            .await
            .body,
    );
    let report = app.run_job(&admin, "overdue-check", "2056-03-01").await;
    assert_eq!(report["installmentsMarkedOverdue"], 12 * 360);
    assert_eq!(report["penaltiesApplied"], 12 * 360);
    assert_eq!(report["loansMarkedOverdue"], 12);
    assert_eq!(report["notificationsWritten"], 2 * 12 * 360);
    assert_eq!(report["batchesRetried"], 0);
    assert_eq!(report["failed"], 0);
    assert_eq!(app.count("notifications").await, 2 * 12 * 360 + 12);
}
