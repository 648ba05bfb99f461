//! Payments benchmark on PostgreSQL: loads about a million installments,
//! then reports the latency of `GET /payments/overdue` (first page) and of
//! a payment on a loan with 360 installments, through the whole router
//! (middleware, auth, JSON, database).
//!
//! ```sh
//! cargo bench --bench payments                      # local PostgreSQL
//! BENCH_DATABASE_URL=postgres://… cargo bench --bench payments
//! ```
//!
//! It creates a scratch database `lt_bench_<random>` on the server and
//! drops it at the end (set `BENCH_KEEP=1` to keep it).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const SMALL_LOANS: i64 = 83_333;
const SMALL_TERM: i64 = 12;
const BIG_TERM: i64 = 360;
const SAMPLES: usize = 300;
const WARMUP: usize = 30;
const TARGET: Duration = Duration::from_millis(20);

mod common;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = [
        ("AUTH_RATE_LIMIT_PER_MINUTE", "100000"),
        ("RATE_LIMIT_PER_MINUTE", "10000000"),
        ("ADMIN_EMAIL", "admin@bench.example"),
        ("ADMIN_USERNAME", "admin"),
        ("ADMIN_PASSWORD", "bench admin password"),
    ];
    common::with_scratch_state(&settings, run).await
}

async fn run(state: loan_tracker::app::AppState) -> anyhow::Result<()> {
    let router = loan_tracker::router::router(state.clone());
    let client = Client { router };

    let borrower = client
        .call(
            Method::POST,
            "/auth/register",
            None,
            Some(json!({ "email": "borrower@bench.example", "username": "borrower", "password": "bench password 1" })),
        )
        .await?;
    let borrower_id = borrower["user"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let borrower_token = borrower["accessToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let admin = client
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({ "username": "admin", "password": "bench admin password" })),
        )
        .await?;
    let admin_token = admin["accessToken"].as_str().unwrap_or_default().to_owned();

    let started = Instant::now();
    load_data(&state, &borrower_id).await?;
    let big_loan = client
        .call(
            Method::POST,
            "/loans/apply",
            Some(&borrower_token),
            Some(json!({ "amount": "250000.00", "termMonths": BIG_TERM })),
        )
        .await?;
    let big_loan_id = big_loan["id"].as_str().unwrap_or_default().to_owned();
    client
        .call(
            Method::PATCH,
            &format!("/loans/{big_loan_id}/approve"),
            Some(&admin_token),
            None,
        )
        .await?;
    common::execute_all(&state, &["ANALYZE".to_owned()]).await?;
    let [total, overdue, loans] = common::counts(
        &state,
        "SELECT (SELECT COUNT(*) FROM installments) AS total, \
         (SELECT COUNT(*) FROM installments WHERE status <> 'PAID' AND due_date < CURRENT_DATE) AS overdue, \
         (SELECT COUNT(*) FROM loans) AS loans",
        &["total", "overdue", "loans"],
    )
    .await?[..] else {
        anyhow::bail!("no counts");
    };
    println!(
        "loaded {total} installments ({overdue} overdue) over {loans} loans in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let overdue_staff = client
        .measure(|| client.call(Method::GET, "/payments/overdue", Some(&admin_token), None))
        .await?;
    let overdue_user = client
        .measure(|| {
            client.call(
                Method::GET,
                "/payments/overdue",
                Some(&borrower_token),
                None,
            )
        })
        .await?;
    let payment_path = format!("/payments/{big_loan_id}");
    let payments = client
        .measure(|| {
            client.call(
                Method::POST,
                &payment_path,
                Some(&borrower_token),
                Some(json!({ "amount": "1.00" })),
            )
        })
        .await?;

    println!();
    println!(
        "| scenario (PostgreSQL, in-process router, {SAMPLES} samples) | median | p95 | p99 | target |"
    );
    println!("|---|---|---|---|---|");
    for (label, samples) in [
        (
            "GET /payments/overdue, first page, as staff",
            &overdue_staff,
        ),
        (
            "GET /payments/overdue, first page, as a borrower",
            &overdue_user,
        ),
        (
            "POST /payments/{loanId}, loan with 360 installments",
            &payments,
        ),
    ] {
        let median = percentile(samples, 50);
        println!(
            "| {label} | {:.2} ms | {:.2} ms | {:.2} ms | {} |",
            ms(median),
            ms(percentile(samples, 95)),
            ms(percentile(samples, 99)),
            if median < TARGET {
                "< 20 ms: met"
            } else {
                "< 20 ms: MISSED"
            }
        );
    }
    Ok(())
}

/// Bulk-loads users, 12-month loans spread over the last three years, and
/// their installments: those due more than 60 days ago are paid, the rest
/// of the past ones are overdue, future ones pending.
async fn load_data(state: &loan_tracker::app::AppState, borrower_id: &str) -> anyhow::Result<()> {
    let statements = [
        common::BULK_USERS.to_owned(),
        format!(
            "INSERT INTO loans (id, user_id, status, currency, principal_minor, annual_interest_rate, term_months, \
             installment_minor, total_payable_minor, first_due_date, next_due_date) \
             SELECT gen_random_uuid(), u.id, 'APPROVED', 'USD', 1200000, '0.0', {SMALL_TERM}, 100000, 1200000, \
                    CURRENT_DATE - ((g % 1095) || ' days')::interval, CURRENT_DATE \
             FROM generate_series(1, {SMALL_LOANS}) g \
             JOIN LATERAL (SELECT id FROM users WHERE username = 'user' || (1 + g % 10000)) u ON true"
        ),
        format!(
            "INSERT INTO installments (id, loan_id, user_id, number, due_date, principal_minor, interest_minor, \
             status, principal_paid_minor) \
             SELECT gen_random_uuid(), l.id, l.user_id, n, \
                    (l.first_due_date + ((n - 1) || ' months')::interval)::date, 100000, 0, \
                    CASE WHEN (l.first_due_date + ((n - 1) || ' months')::interval)::date < CURRENT_DATE - 60 THEN 'PAID' \
                         WHEN (l.first_due_date + ((n - 1) || ' months')::interval)::date < CURRENT_DATE THEN 'OVERDUE' \
                         ELSE 'PENDING' END, \
                    CASE WHEN (l.first_due_date + ((n - 1) || ' months')::interval)::date < CURRENT_DATE - 60 THEN 100000 \
                         ELSE 0 END \
             FROM loans l CROSS JOIN generate_series(1, {SMALL_TERM}) n \
             WHERE l.user_id <> '{borrower_id}'"
        ),
        // One overdue installment of the borrower's own, for the per-user list.
        format!(
            "INSERT INTO loans (id, user_id, status, currency, principal_minor, annual_interest_rate, term_months, \
             installment_minor, total_payable_minor) \
             VALUES (gen_random_uuid(), '{borrower_id}', 'OVERDUE', 'USD', 100000, '0.0', 1, 100000, 100000)"
        ),
        format!(
            "INSERT INTO installments (id, loan_id, user_id, number, due_date, principal_minor, interest_minor, status) \
             SELECT gen_random_uuid(), id, user_id, 1, CURRENT_DATE - 10, 100000, 0, 'OVERDUE' \
             FROM loans WHERE user_id = '{borrower_id}' AND status = 'OVERDUE'"
        ),
    ];
    common::execute_all(state, &statements).await
}

struct Client {
    router: axum::Router,
}

impl Client {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let mut request = match body {
            Some(body) => builder
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))?,
            None => builder.body(Body::empty())?,
        };
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        let response = self.router.clone().oneshot(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        if !(status == StatusCode::OK || status == StatusCode::CREATED) {
            anyhow::bail!(
                "{path} answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn measure<F, Fut>(&self, request: F) -> anyhow::Result<Vec<Duration>>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<Value>>,
    {
        for _ in 0..WARMUP {
            request().await?;
        }
        let mut samples = Vec::with_capacity(SAMPLES);
        for _ in 0..SAMPLES {
            let started = Instant::now();
            request().await?;
            samples.push(started.elapsed());
        }
        samples.sort_unstable();
        Ok(samples)
    }
}

fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    let index = (sorted.len().saturating_sub(1) * percent) / 100;
    sorted.get(index).copied().unwrap_or_default()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
