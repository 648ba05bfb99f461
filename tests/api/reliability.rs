//! Reliability under load, with real processes: payments keep streaming
//! while PostgreSQL restarts, and while the service is killed with
//! `kill -9` and started again. Afterwards every payment that was answered
//! 2xx is stored exactly once and every loan's totals add up.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use loan_tracker::db::entities::{installment, loan, payment};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use tokio::sync::watch;
use uuid::Uuid;

use crate::processes::{ADMIN, Client, PostgresServer, Service};
use crate::support::{Needs, TestApp, eventually, may_run, postgres_configured};

/// One payment request and what came of it.
#[derive(Debug, Clone)]
struct Attempt {
    key: String,
    sent_at: Instant,
    answered_at: Instant,
    /// `None` when no HTTP answer came (refused, reset).
    status: Option<u16>,
    payment_id: Option<String>,
}

type Attempts = Arc<Mutex<Vec<Attempt>>>;

async fn pay(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    loan_id: &str,
    key: &str,
) -> (Option<u16>, Option<String>) {
    let response = client
        .post(format!("{base}/payments/{loan_id}"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&json!({ "amount": "0.10" }))
        .send()
        .await;
    match response {
        Ok(response) => {
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (Some(status), body["id"].as_str().map(str::to_owned))
        }
        Err(_) => (None, None),
    }
}

/// `streams` clients paying 0.10 in a loop, each with a fresh key, until
/// `stop` turns true; `base` says where to send (it may change).
fn start_streams(
    streams: usize,
    base: watch::Receiver<String>,
    token: String,
    loan_id: String,
    stop: watch::Receiver<bool>,
) -> (Attempts, tokio::task::JoinSet<()>) {
    let attempts: Attempts = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for stream in 0..streams {
        let (attempts, base, token, loan_id, stop) = (
            Arc::clone(&attempts),
            base.clone(),
            token.clone(),
            loan_id.clone(),
            stop.clone(),
        );
        tasks.spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client");
            for n in 0.. {
                if *stop.borrow() {
                    return;
                }
                let key = format!("stream{stream}-{n}");
                let sent_at = Instant::now();
                let target = base.borrow().clone();
                let (status, payment_id) = pay(&client, &target, &token, &loan_id, &key).await;
                if status.is_none() {
                    // Nothing listening: do not spin.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                attempts
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Attempt {
                        key,
                        sent_at,
                        answered_at: Instant::now(),
                        status,
                        payment_id,
                    });
            }
        });
    }
    (attempts, tasks)
}

/// Checks the stored state against what the clients were told, prints the
/// counts, and returns how many accepted payments are missing (must be 0).
async fn audit_outcome(
    db: &DatabaseConnection,
    loan_id: &str,
    attempts: &[Attempt],
    label: &str,
) -> usize {
    let loan_uuid: Uuid = loan_id.parse().expect("uuid");
    let stored = payment::Entity::find()
        .filter(payment::Column::LoanId.eq(loan_uuid))
        .all(db)
        .await
        .expect("payments");
    let by_key: HashMap<&str, usize> = stored.iter().fold(HashMap::new(), |mut counts, payment| {
        *counts
            .entry(payment.idempotency_key.as_deref().unwrap_or(""))
            .or_default() += 1;
        counts
    });
    assert!(
        by_key.values().all(|count| *count == 1),
        "a key was recorded twice"
    );
    let stored_ids: HashSet<String> = stored.iter().map(|p| p.id.to_string()).collect();
    let accepted: Vec<&Attempt> = attempts.iter().filter(|a| a.status == Some(201)).collect();
    let lost = accepted
        .iter()
        .filter(|a| {
            !a.payment_id
                .as_ref()
                .is_some_and(|id| stored_ids.contains(id))
        })
        .count();
    let rejected = attempts.len() - accepted.len();
    println!(
        "{label}: sent {}, accepted {}, rejected or unanswered {rejected}, lost {lost}, stored {}",
        attempts.len(),
        accepted.len(),
        stored.len()
    );
    // Totals: the loan equals its payment rows, which equal what the
    // installments received.
    let loan_row = loan::Entity::find_by_id(loan_uuid)
        .one(db)
        .await
        .expect("query")
        .expect("loan");
    let paid: i64 = stored.iter().map(|p| p.amount_minor).sum();
    assert_eq!(loan_row.total_paid_minor, paid, "loan total = Σ payments");
    let installments = installment::Entity::find()
        .filter(installment::Column::LoanId.eq(loan_uuid))
        .all(db)
        .await
        .expect("installments");
    let allocated: i64 = installments
        .iter()
        .map(|i| i.principal_paid_minor + i.interest_paid_minor + i.penalty_paid_minor)
        .sum();
    assert_eq!(allocated, paid, "Σ installments paid = Σ payments");
    lost
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_service_loses_no_accepted_payment() {
    let app = TestApp::spawn().await;
    let mut service = Service::start(&app.vars, &ADMIN).await;
    let (token, loan_id) = Client::new(service.url(""))
        .borrower_with_approved_loan("payer", "100000", 24)
        .await;
    let (base_tx, base) = watch::channel(service.url(""));
    let (stop_tx, stop) = watch::channel(false);
    let (attempts, mut streams) = start_streams(4, base, token.clone(), loan_id.clone(), stop);

    let count = || {
        attempts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    };
    assert!(eventually(Duration::from_secs(30), async || count() >= 60).await);
    service.kill().await;
    let restarted = Service::start(&app.vars, &ADMIN).await;
    let _ = base_tx.send(restarted.url(""));
    let resumed = count();
    assert!(eventually(Duration::from_secs(30), async || count() >= resumed + 60).await);
    let _ = stop_tx.send(true);
    while streams.join_next().await.is_some() {}

    // The clients retry what got no 2xx, with the same keys: each lands
    // once, whether or not the first try was stored before the kill.
    let mut attempts = attempts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let unanswered = attempts.iter().filter(|a| a.status != Some(201)).count();
    println!(
        "kill -9: {} requests sent, {unanswered} without a 2xx (retried with their keys)",
        attempts.len()
    );
    let client = reqwest::Client::new();
    for attempt in attempts.iter_mut().filter(|a| a.status != Some(201)) {
        let (status, payment_id) =
            pay(&client, &restarted.url(""), &token, &loan_id, &attempt.key).await;
        assert_eq!(status, Some(201), "retry of {}", attempt.key);
        attempt.status = status;
        attempt.payment_id = payment_id;
    }
    let lost = audit_outcome(
        &app.state.db.read,
        &loan_id,
        &attempts,
        "kill -9 and restart",
    )
    .await;
    assert_eq!(lost, 0);
    let stored = payment::Entity::find()
        .filter(payment::Column::LoanId.eq(loan_id.parse::<Uuid>().expect("uuid")))
        .all(&app.state.db.read)
        .await
        .expect("payments");
    assert_eq!(stored.len(), attempts.len(), "exactly once per key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_service_rides_out_a_postgresql_restart() {
    // It restarts a PostgreSQL server of its own.
    let test = "the_service_rides_out_a_postgresql_restart";
    if !may_run(test, Needs::Postgres, postgres_configured()) {
        return;
    }
    let started = PostgresServer::start().await;
    if !may_run(test, Needs::Postgres, started.is_some()) {
        return;
    }
    let Some(postgres) = started else {
        return;
    };
    let vars: HashMap<String, String> = [
        ("DATABASE_URL", postgres.url("postgres")),
        (
            "JWT_SECRET",
            "reliability-secret-0123456789abcdef0123".to_owned(),
        ),
        ("AUTH_RATE_LIMIT_PER_MINUTE", "10000".to_owned()),
        ("RATE_LIMIT_PER_MINUTE", "1000000".to_owned()),
        ("DATABASE_MAX_CONNECTIONS", "8".to_owned()),
        ("SCHEDULER_ENABLED", "false".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let service = Service::start_command(&["serve", "--no-worker"], &vars, &ADMIN).await;
    let base = service.url("");
    let (token, loan_id) = Client::new(base.clone())
        .borrower_with_approved_loan("payer", "100000", 24)
        .await;
    let (_base_tx, base_rx) = watch::channel(base.clone());
    let (stop_tx, stop) = watch::channel(false);
    let (attempts, mut streams) = start_streams(4, base_rx, token, loan_id.clone(), stop);
    let count = || {
        attempts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    };
    assert!(eventually(Duration::from_secs(30), async || count() >= 60).await);

    let client = reqwest::Client::new();
    let ready = |client: reqwest::Client, url: String| async move {
        client
            .get(url)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    let outage_started = Instant::now();
    postgres.stop().await;
    let reported_down = eventually(Duration::from_secs(20), async || {
        ready(client.clone(), service.url("/health/ready")).await == 503
    })
    .await;
    assert!(reported_down, "readiness reports the database down");
    postgres.start_again().await;
    let recovered = eventually(Duration::from_secs(30), async || {
        ready(client.clone(), service.url("/health/ready")).await == 200
    })
    .await;
    assert!(recovered, "the service reconnects by itself");
    let outage_ended = Instant::now();
    let resumed = count();
    assert!(eventually(Duration::from_secs(30), async || count() >= resumed + 60).await);
    let _ = stop_tx.send(true);
    while streams.join_next().await.is_some() {}

    let attempts = attempts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    // In flight during the outage: not answered before it began, sent
    // before it ended.
    let in_outage = |a: &Attempt| a.answered_at >= outage_started && a.sent_at <= outage_ended;
    let server_errors_outside: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.status.is_some_and(|s| s >= 500) && !in_outage(a))
        .collect();
    assert!(
        server_errors_outside.is_empty(),
        "5xx outside the outage: {server_errors_outside:?}"
    );
    let after: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.sent_at > outage_ended)
        .collect();
    assert!(
        !after.is_empty() && after.iter().all(|a| a.status == Some(201)),
        "all accepted after recovery"
    );
    let db = sea_orm::Database::connect(postgres.url("postgres"))
        .await
        .expect("connect");
    let lost = audit_outcome(&db, &loan_id, &attempts, "PostgreSQL restart").await;
    assert_eq!(lost, 0);
}
