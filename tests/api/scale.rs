//! Scale-out and shutdown, with real processes: two `loan-tracker`
//! instances behind NGINX on one PostgreSQL and one Redis, and a single
//! instance stopped with SIGTERM in the middle of a stream of payments.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use loan_tracker::db::entities::{job_run, loan, payment};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use uuid::Uuid;

use crate::processes::{ADMIN, Client, Nginx, Service, nginx_available};
use crate::support::{Needs, TestApp, eventually, may_run, postgres_configured, redis_configured};

/// Value of one series in a Prometheus scrape (0 when absent).
fn series(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .find(|line| line.starts_with(name))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_behind_nginx_behave_as_one() {
    // Two processes share one database and Redis behind NGINX.
    let test = "two_instances_behind_nginx_behave_as_one";
    if !may_run(test, Needs::Postgres, postgres_configured())
        || !may_run(test, Needs::Redis, redis_configured())
        || !may_run(test, Needs::Nginx, nginx_available())
    {
        return;
    }
    let app = TestApp::spawn().await;
    let settings = [
        ADMIN[0],
        ADMIN[1],
        ADMIN[2],
        ("AUTH_RATE_LIMIT_PER_MINUTE", "8"),
        ("TRUSTED_PROXIES", "127.0.0.1"),
        ("OVERDUE_CHECK_CRON", "* * * * * *"),
        ("SCHEDULER_ENABLED", "true"),
    ];
    // Started together, both race to migrate and to create the admin.
    let (first, second) = tokio::join!(
        Service::start(&app.vars, &settings),
        Service::start(&app.vars, &settings)
    );
    let mut first = first;
    let nginx = Nginx::start(&[first.port, second.port]).await;
    let public = Client::new(nginx.url(""));
    let direct_first = Client::new(first.url(""));
    let direct_second = Client::new(second.url(""));

    public
        .expect(
            reqwest::Method::POST,
            "/auth/register",
            None,
            Some(json!({ "email": "b@example.com", "username": "borrower", "password": "borrower pass" })),
            201,
        )
        .await;
    let borrower = public.token("borrower", "borrower pass").await;
    let admin = public.token("root", "root password 1").await;

    // A write through one instance is read back through the other.
    let loan = direct_first
        .expect(
            reqwest::Method::POST,
            "/loans/apply",
            Some(&borrower),
            Some(json!({ "amount": "5000", "termMonths": 12 })),
            201,
        )
        .await;
    let loan_id = loan["id"].as_str().expect("loan id").to_owned();
    direct_second
        .expect(
            reqwest::Method::GET,
            &format!("/loans/{loan_id}"),
            Some(&borrower),
            None,
            200,
        )
        .await;
    direct_first
        .expect(
            reqwest::Method::PATCH,
            &format!("/loans/{loan_id}/approve"),
            Some(&admin),
            None,
            200,
        )
        .await;
    let seen = direct_second
        .expect(
            reqwest::Method::GET,
            &format!("/loans/{loan_id}"),
            Some(&borrower),
            None,
            200,
        )
        .await;
    assert_eq!(seen["status"], "APPROVED");

    // Requests spread over both instances.
    for _ in 0..20 {
        public
            .expect(
                reqwest::Method::GET,
                "/users/me",
                Some(&borrower),
                None,
                200,
            )
            .await;
    }
    let me = "http_requests_total{method=\"GET\",route=\"/users/me\",status=\"200\"}";
    let first_scrape = direct_first
        .http
        .get(first.url("/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    let second_scrape = direct_second
        .http
        .get(second.url("/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    let (on_first, on_second) = (series(&first_scrape, me), series(&second_scrape, me));
    assert!(
        on_first >= 1.0 && on_second >= 1.0,
        "spread {on_first} / {on_second}"
    );
    assert_eq!(on_first + on_second, 20.0);
    let blocked = public
        .send(reqwest::Method::GET, "/metrics", None, None, None)
        .await
        .expect("metrics via nginx");
    assert_eq!(blocked.0, 404, "metrics stay internal");

    // One login budget for the client, whichever instance answers: the
    // register and two logins above used 3 of 8 — unless the wall-clock
    // minute (the window) turned since, which leaves a fresh 8. Either way
    // the budget is one: counted per instance, nine attempts spread over
    // two instances would all be answered 401.
    let mut statuses = Vec::new();
    for _ in 0..9 {
        let (status, _) = public
            .send(
                reqwest::Method::POST,
                "/auth/login",
                None,
                Some(json!({ "username": "borrower", "password": "wrong password" })),
                None,
            )
            .await
            .expect("login");
        statuses.push(status);
    }
    let same_window = [401, 401, 401, 401, 401, 429, 429, 429, 429];
    let next_window = [401, 401, 401, 401, 401, 401, 401, 401, 429];
    assert!(
        statuses == same_window || statuses == next_window,
        "the limit is shared across instances: {statuses:?}"
    );

    // Both instances run the every-second schedule; each tick runs once.
    let db = &app.state.db.read;
    let ticks = eventually(Duration::from_secs(20), async || {
        job_run::Entity::find()
            .filter(job_run::Column::TriggeredBy.eq("SCHEDULE"))
            .all(db)
            .await
            .is_ok_and(|runs| runs.len() >= 3)
    })
    .await;
    assert!(ticks, "the scheduler ran");
    let runs = job_run::Entity::find()
        .filter(job_run::Column::TriggeredBy.eq("SCHEDULE"))
        .all(db)
        .await
        .expect("job runs");
    let periods: HashSet<(&str, &str)> = runs
        .iter()
        .map(|run| (run.job.as_str(), run.period.as_str()))
        .collect();
    assert_eq!(periods.len(), runs.len(), "a period was run twice");

    // Kill one instance in the middle of a stream of payments.
    let mut accepted: HashMap<String, String> = HashMap::new();
    let mut failed = Vec::new();
    for n in 0..30 {
        if n == 10 {
            first.kill().await;
        }
        let key = format!("stream-{n}");
        match public
            .send(
                reqwest::Method::POST,
                &format!("/payments/{loan_id}"),
                Some(&borrower),
                Some(json!({ "amount": "1.00" })),
                Some(&key),
            )
            .await
        {
            Ok((201, body)) => {
                accepted.insert(key, body["id"].as_str().expect("payment id").to_owned());
            }
            Ok((status, _)) => {
                assert_ne!(status, 500, "no internal error");
                failed.push(key);
            }
            Err(_) => failed.push(key),
        }
    }
    assert!(
        accepted.len() >= 25,
        "NGINX kept serving from the other instance: {failed:?}"
    );
    // The client retries what failed, with the same keys.
    for key in failed {
        let (status, body) = public
            .send(
                reqwest::Method::POST,
                &format!("/payments/{loan_id}"),
                Some(&borrower),
                Some(json!({ "amount": "1.00" })),
                Some(&key),
            )
            .await
            .expect("retry");
        assert_eq!(status, 201, "{body}");
        accepted.insert(key, body["id"].as_str().expect("payment id").to_owned());
    }
    let loan_uuid: Uuid = loan_id.parse().expect("uuid");
    let stored = payment::Entity::find()
        .filter(payment::Column::LoanId.eq(loan_uuid))
        .all(db)
        .await
        .expect("payments");
    assert_eq!(stored.len(), 30, "every accepted payment once, none twice");
    let stored_ids: HashSet<String> = stored.iter().map(|p| p.id.to_string()).collect();
    for id in accepted.values() {
        assert!(stored_ids.contains(id), "accepted payment {id} is missing");
    }
    let loan_row = loan::Entity::find_by_id(loan_uuid)
        .one(db)
        .await
        .expect("query")
        .expect("loan");
    assert_eq!(loan_row.total_paid_minor, 3_000);
    assert_eq!(stored.iter().map(|p| p.amount_minor).sum::<i64>(), 3_000);
    nginx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_accepted_payments_and_exits_cleanly() {
    let app = TestApp::spawn().await;
    let mut service = Service::start(&app.vars, &ADMIN).await;
    let client = Client::new(service.url(""));
    let (borrower, loan_id) = client
        .borrower_with_approved_loan("steady", "10000", 12)
        .await;

    // Four clients pay in a loop until the service goes away.
    let accepted = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let server_errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut streams = tokio::task::JoinSet::new();
    for stream in 0..4 {
        let client = client.clone();
        let (borrower, loan_id) = (borrower.clone(), loan_id.clone());
        let (accepted, server_errors, sent) = (
            Arc::clone(&accepted),
            Arc::clone(&server_errors),
            Arc::clone(&sent),
        );
        streams.spawn(async move {
            for n in 0.. {
                sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let key = format!("s{stream}-{n}");
                match client
                    .send(
                        reqwest::Method::POST,
                        &format!("/payments/{loan_id}"),
                        Some(&borrower),
                        Some(json!({ "amount": "0.10" })),
                        Some(&key),
                    )
                    .await
                {
                    Ok((201, body)) => accepted
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(body["id"].as_str().unwrap_or_default().to_owned()),
                    Ok((status, _)) if status >= 500 => {
                        server_errors.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    // Refused or reset: the service has stopped accepting.
                    Err(_) => return,
                }
            }
        });
    }
    let warmed_up = eventually(Duration::from_secs(30), async || {
        sent.load(std::sync::atomic::Ordering::SeqCst) >= 40
    })
    .await;
    assert!(warmed_up);
    assert!(
        service.healthcheck().await,
        "loan-tracker healthcheck says ready"
    );
    let exit_code = service.terminate().await;
    assert!(!service.healthcheck().await, "and not ready once stopped");
    while streams.join_next().await.is_some() {}

    assert_eq!(exit_code, Some(0), "a clean exit: {}", service.log_text());
    assert_eq!(
        server_errors.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no 5xx while shutting down"
    );
    let accepted = accepted
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    assert!(accepted.len() >= 30, "{} accepted", accepted.len());
    let loan_uuid: Uuid = loan_id.parse().expect("uuid");
    let stored = payment::Entity::find()
        .filter(payment::Column::LoanId.eq(loan_uuid))
        .all(&app.state.db.read)
        .await
        .expect("payments");
    let stored_ids: HashSet<String> = stored.iter().map(|p| p.id.to_string()).collect();
    for id in &accepted {
        assert!(stored_ids.contains(id), "accepted payment {id} was lost");
    }
    assert_eq!(
        stored.len(),
        accepted.len(),
        "nothing was recorded without an answer"
    );
    let loan_row = loan::Entity::find_by_id(loan_uuid)
        .one(&app.state.db.read)
        .await
        .expect("query")
        .expect("loan");
    assert_eq!(
        loan_row.total_paid_minor,
        stored.iter().map(|p| p.amount_minor).sum::<i64>()
    );
}

#[test]
fn the_shipped_nginx_config_passes_nginx_t() {
    if !may_run(
        "the_shipped_nginx_config_passes_nginx_t",
        Needs::Nginx,
        nginx_available(),
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("nginx.conf");
    std::fs::write(
        &config,
        crate::processes::adapted_nginx_config(dir.path(), 18080, &[18081, 18082]),
    )
    .expect("write nginx.conf");
    let output = std::process::Command::new("nginx")
        .args([
            "-t",
            "-p",
            &dir.path().display().to_string(),
            "-c",
            &config.display().to_string(),
        ])
        .output()
        .expect("nginx -t");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_worker_serves_health_and_metrics_only() {
    let app = TestApp::spawn().await;
    let worker = Service::start_command(&["worker"], &app.vars, &[]).await;
    let client = reqwest::Client::new();
    let get = |path: &'static str| {
        let (client, url) = (client.clone(), worker.url(path));
        async move {
            client
                .get(url)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    assert_eq!(get("/health/live").await, 200);
    assert_eq!(get("/health/ready").await, 200);
    assert_eq!(get("/metrics").await, 200);
    assert_eq!(get("/users/me").await, 404, "no API in a worker");
    assert_eq!(get("/openapi.json").await, 404);
}
