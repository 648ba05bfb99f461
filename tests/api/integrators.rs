//! The loose ends an integrator or operator trips over: numbers out of
//! range, hidden characters in reasons, what CORS lets a browser read, the
//! health check's configuration, mail settings at start-up, and the
//! upgrade's replay of the whole book.

use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::json;

use crate::support::{TestApp, serve_app};

#[tokio::test]
async fn a_number_out_of_range_is_a_422_naming_its_field_not_malformed_json() {
    let app = TestApp::spawn().await;
    let borrower = app.register("borrower").await;
    let send = |body: &'static str| {
        Request::post("/loans/apply")
            .header("authorization", format!("Bearer {}", borrower.token))
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("request")
    };
    let huge = app
        .send(send(r#"{"amount": 1e400, "termMonths": 12}"#))
        .await;
    huge.assert_invalid_fields(&["amount"]);
    assert_eq!(
        huge.body["errors"][0]["message"],
        "is a number out of range"
    );
    let both = app
        .send(send(r#"{"amount": -1e400, "termMonths": 1e999}"#))
        .await;
    both.assert_invalid_fields(&["amount", "termMonths"]);
    // What is not JSON is still a 400.
    app.send(send(r#"{"amount": 1e400, "termMonths": }"#))
        .await
        .assert_problem(400);
    assert_eq!(app.count("loans").await, 0);
}

#[tokio::test]
async fn reasons_with_control_or_format_characters_are_refused() {
    let app = TestApp::spawn().await;
    let (_, admin, loan_id) = app.golden_loan().await;
    let paid = app.pay(&admin, loan_id, json!("100.00"), None).await;
    paid.assert_status(201);
    let payment_id = paid.body["id"].as_str().expect("payment id").to_owned();
    for reason in [
        "bounced\u{202e}euqehc",
        "bounced\u{1b}[2J",
        "zero\u{200b}width",
    ] {
        app.post(
            &format!("/payments/{payment_id}/reverse"),
            Some(&admin.token),
            json!({ "reason": reason }),
        )
        .await
        .assert_invalid_fields(&["reason"]);
    }
    let borrower = app.register("second").await;
    let pending = app.apply(&borrower, "500.00", 6).await;
    app.patch(
        &format!("/loans/{pending}/reject"),
        &admin.token,
        Some(json!({ "reason": "no\u{7}" })),
    )
    .await
    .assert_invalid_fields(&["reason"]);
    assert_eq!(
        app.loan_body(&admin.token, &pending).await["status"],
        "PENDING"
    );
    // Line breaks are text.
    app.post(
        &format!("/payments/{payment_id}/reverse"),
        Some(&admin.token),
        json!({ "reason": "bounced\ncheque 42" }),
    )
    .await
    .assert_status(200);
}

#[tokio::test]
async fn cors_lets_a_browser_client_read_the_headers_the_api_documents() {
    let app = TestApp::builder()
        .env("CORS_ORIGINS", "https://app.example")
        .build()
        .await;
    let answer = app
        .send(
            Request::builder()
                .method(Method::GET)
                .uri("/health/live")
                .header("origin", "https://app.example")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    let exposed: Vec<String> = answer
        .header("access-control-expose-headers")
        .expect("exposed headers")
        .split(',')
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    for name in [
        "x-request-id",
        "retry-after",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "idempotent-replayed",
    ] {
        assert!(
            exposed.iter().any(|each| each == name),
            "{name} in {exposed:?}"
        );
    }
}

/// Runs the binary with exactly `vars` (and PATH) in `folder`.
async fn run_binary(
    folder: &std::path::Path,
    args: &[&str],
    vars: &[(&str, &str)],
) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_loan-tracker"))
        .args(args)
        .current_dir(folder)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .output()
        .await
        .expect("the binary runs")
}

#[tokio::test]
async fn the_health_check_reads_dot_env_as_the_service_does() {
    let app = TestApp::spawn().await;
    let served = serve_app(&app).await;
    let folder = tempfile::tempdir().expect("folder");
    std::fs::write(
        folder.path().join(".env"),
        format!("PORT={}\n", served.address.port()),
    )
    .expect(".env");
    let ready = run_binary(folder.path(), &["healthcheck"], &[]).await;
    assert!(
        ready.status.success(),
        "{}",
        String::from_utf8_lossy(&ready.stderr)
    );
    // The environment still wins over .env, as for the service.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        listener.local_addr().expect("address").port()
    };
    let elsewhere = run_binary(
        folder.path(),
        &["healthcheck"],
        &[("PORT", &closed.to_string())],
    )
    .await;
    assert_eq!(elsewhere.status.code(), Some(1));
}

#[tokio::test]
async fn bad_mail_settings_stop_start_up_like_any_other_variable() {
    let folder = tempfile::tempdir().expect("folder");
    let data = folder.path().join("data");
    let data = data.to_str().expect("path");
    let bad_from = run_binary(
        folder.path(),
        &["migrate"],
        &[("DATA_DIR", data), ("MAIL_FROM", "not a mailbox")],
    )
    .await;
    assert_eq!(bad_from.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad_from.stderr);
    assert!(stderr.contains("MAIL_FROM"), "{stderr}");
    let bad_url = run_binary(
        folder.path(),
        &["migrate"],
        &[
            ("DATA_DIR", data),
            ("SMTP_URL", "smtp://mail.example:notaport"),
        ],
    )
    .await;
    assert_eq!(bad_url.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_url.stderr).contains("SMTP_URL"));
    // Nothing was started: no database was created.
    assert!(!folder.path().join("data").exists());
    let good = run_binary(
        folder.path(),
        &["migrate"],
        &[
            ("DATA_DIR", data),
            ("MAIL_FROM", "Loans <loans@lender.example>"),
            ("SMTP_URL", "smtp://mail.example:2525"),
        ],
    )
    .await;
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
}

#[tokio::test]
async fn replaying_the_book_puts_right_a_fee_an_earlier_version_charged_and_audits_it() {
    let app = TestApp::spawn().await;
    let (_, admin, loan_id) = app.golden_loan().await;
    app.clock
        .set(crate::support::start_time() + chrono::Duration::days(31)); // 2026-02-15
    app.pay(&admin, loan_id, json!("888.49"), None)
        .await
        .assert_status(201);
    app.clock
        .set(crate::support::start_time() + chrono::Duration::days(32));
    // What an earlier version's job stored: a fee on the installment paid
    // on its due date, and the loan overdue for it.
    app.sql(
        "UPDATE installments SET penalty_minor = 4442, penalty_applied_on = '2026-02-16', \
         status = 'OVERDUE', overdue_since = '2026-02-16' WHERE number = 1",
    )
    .await;
    app.sql("UPDATE loans SET penalties_minor = 4442, status = 'OVERDUE'")
        .await;
    assert_eq!(
        app.loan_body(&admin.token, &loan_id).await["penaltiesOutstanding"],
        "44.42"
    );

    let report = loan_tracker::jobs::replay::replay_active_loans(&app.state)
        .await
        .expect("replay");
    assert_eq!(
        (
            report.loans,
            report.loans_changed,
            report.fees_waived,
            report.fees_charged
        ),
        (1, 1, 1, 0)
    );
    assert!(report.failed.is_empty());
    let loan = app.loan_body(&admin.token, &loan_id).await;
    assert_eq!(loan["penaltiesOutstanding"], "0.00");
    assert_eq!(loan["status"], "APPROVED");
    assert_eq!(loan["schedule"][0]["status"], "PAID");
    let waived = app.audit_rows("PENALTY_WAIVED").await;
    assert_eq!(waived.len(), 1);
    assert_eq!(
        waived[0].details,
        json!({ "installmentNumber": 1, "previous": "44.42", "penalty": "0.00" })
    );
    assert_eq!(
        app.verify_books(loan_id).await.expect("books"),
        Vec::<String>::new()
    );
    // Once right, a loan is read and left as it is.
    let again = loan_tracker::jobs::replay::replay_active_loans(&app.state)
        .await
        .expect("replay");
    assert_eq!((again.loans, again.loans_changed), (1, 0));
    assert_eq!(app.audit_rows("PENALTY_WAIVED").await.len(), 1);
}

#[tokio::test]
async fn the_replay_command_asks_for_the_whole_book_and_reports_as_json() {
    let app = TestApp::spawn().await;
    app.golden_loan().await;
    let folder = tempfile::tempdir().expect("folder");
    let vars: Vec<(&str, &str)> = app
        .vars
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let without = run_binary(folder.path(), &["replay"], &vars).await;
    assert!(!without.status.success());
    assert!(String::from_utf8_lossy(&without.stderr).contains("--all"));
    let all = run_binary(folder.path(), &["replay", "--all"], &vars).await;
    assert!(
        all.status.success(),
        "{}",
        String::from_utf8_lossy(&all.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&all.stdout).expect("JSON report");
    // The command runs on the wall clock, so what the replay changed on
    // the test's loan depends on the day; its shape does not.
    assert_eq!(report["loans"], 1);
    assert_eq!(report["failed"], json!([]));
    for count in [
        "loansChanged",
        "feesCharged",
        "feesWaived",
        "paymentsReallocated",
        "seconds",
    ] {
        assert!(report[count].is_number(), "{count} in {report}");
    }
}
