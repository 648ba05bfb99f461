//! `loan-tracker backup` and `restore`: a copy taken while payments stream
//! in holds every payment acknowledged before it started, and restores
//! into a working database.

use std::cell::RefCell;
use std::time::Instant;

use sea_orm::{ConnectionTrait, Database, DatabaseBackend, Statement};
use serde_json::json;
use uuid::Uuid;

use crate::support::{TestApp, postgres_configured};

/// Runs the binary with `vars` and `args`; its exit status and stderr.
async fn cli(
    vars: &std::collections::HashMap<String, String>,
    args: &[&str],
) -> (bool, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_loan-tracker"))
        .args(args)
        .env_clear()
        .envs(vars)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .expect("run the CLI");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_during_payments_restores_every_acknowledged_payment() {
    let app = TestApp::spawn().await;
    let scratch = tempfile::tempdir().expect("scratch directory");
    let backup_path = scratch.path().join("books.db");
    if postgres_configured() {
        // PostgreSQL's own tools do this; the commands say so and fail.
        for command in ["backup", "restore"] {
            let (ok, _, stderr) =
                cli(&app.vars, &[command, backup_path.to_str().expect("path")]).await;
            assert!(!ok, "{command} on PostgreSQL must fail");
            assert!(stderr.contains("pg_dump"), "{stderr}");
        }
        return;
    }
    let (borrower, _, loan_id) = app.golden_loan().await;

    // Payments stream in; once some are acknowledged, a backup starts
    // while they go on.
    let acknowledged: RefCell<Vec<(Uuid, Instant)>> = RefCell::new(Vec::new());
    let backup_started: RefCell<Option<Instant>> = RefCell::new(None);
    let stream = async {
        for _ in 0..200 {
            if backup_started
                .borrow()
                .is_some_and(|started| started.elapsed().as_millis() > 300)
            {
                break;
            }
            let paid = app.pay(&borrower, loan_id, json!("1.00"), None).await;
            paid.assert_status(201);
            let id = paid.body["id"].as_str().expect("id").parse().expect("uuid");
            acknowledged.borrow_mut().push((id, Instant::now()));
            tokio::task::yield_now().await;
        }
    };
    let take_backup = async {
        while acknowledged.borrow().len() < 20 {
            tokio::task::yield_now().await;
        }
        *backup_started.borrow_mut() = Some(Instant::now());
        loan_tracker::backup::backup(&app.state.config, &backup_path)
            .await
            .expect("backup")
    };
    let ((), report) = tokio::join!(stream, take_backup);
    assert!(report.bytes > 0);
    let started = backup_started.borrow().expect("the backup started");
    let before: Vec<Uuid> = acknowledged
        .borrow()
        .iter()
        .filter(|(_, at)| *at < started)
        .map(|(id, _)| *id)
        .collect();
    assert!(before.len() >= 20);

    // A second backup to the same file is refused, not overwritten.
    let again = loan_tracker::backup::backup(&app.state.config, &backup_path).await;
    assert!(again.is_err());

    // Restored into a fresh data directory, with the service stopped.
    let fresh = tempfile::tempdir().expect("fresh data directory");
    let database = fresh.path().join("loan-tracker.db");
    let mut vars = app.vars.clone();
    vars.insert(
        "DATABASE_URL".to_owned(),
        format!("sqlite://{}?mode=rwc", database.display()),
    );
    vars.insert("DATA_DIR".to_owned(), fresh.path().display().to_string());
    let (ok, stdout, stderr) = cli(&vars, &["restore", backup_path.to_str().expect("path")]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("restored"), "{stdout}");

    let restored = Database::connect(format!("sqlite://{}?mode=ro", database.display()))
        .await
        .expect("open the restored database");
    let stored: Vec<Uuid> = restored
        .query_all_raw(Statement::from_string(
            DatabaseBackend::Sqlite,
            "SELECT id FROM payments",
        ))
        .await
        .expect("payments")
        .iter()
        .map(|row| row.try_get_by_index::<Uuid>(0).expect("id"))
        .collect();
    for id in &before {
        assert!(
            stored.contains(id),
            "payment {id} acknowledged before the backup is missing"
        );
    }
    let mismatched = restored
        .query_all_raw(Statement::from_string(
            DatabaseBackend::Sqlite,
            "SELECT loans.id FROM loans LEFT JOIN payments ON payments.loan_id = loans.id \
             GROUP BY loans.id, loans.total_paid_minor \
             HAVING loans.total_paid_minor <> COALESCE(SUM(payments.amount_minor), 0)",
        ))
        .await
        .expect("totals");
    assert!(
        mismatched.is_empty(),
        "every loan's total is the sum of its payments"
    );
    restored.close().await.expect("close");

    // The restored copy serves: its migrations check out and it starts.
    let (ok, _, stderr) = cli(&vars, &["migrate"]).await;
    assert!(ok, "{stderr}");

    // Under a running service, restore refuses and changes nothing.
    let config = loan_tracker::config::Config::from_map(&vars).expect("config");
    let serving = loan_tracker::backup::hold_service_lock(&config).expect("lock");
    let (ok, _, stderr) = cli(&vars, &["restore", backup_path.to_str().expect("path")]).await;
    assert!(!ok);
    assert!(stderr.contains("stop it before restoring"), "{stderr}");
    drop(serving);

    // A file that is not a backup of this service is refused.
    let junk = scratch.path().join("junk.db");
    std::fs::write(&junk, b"not a database at all").expect("write");
    let (ok, _, stderr) = cli(&vars, &["restore", junk.to_str().expect("path")]).await;
    assert!(!ok);
    assert!(
        stderr.contains("not") || stderr.contains("integrity"),
        "{stderr}"
    );
}
