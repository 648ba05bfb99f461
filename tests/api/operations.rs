//! Running as several instances: the shared cache and rate limits in
//! Redis (when `TEST_REDIS_URL` is set; one instance in process memory
//! otherwise), surviving a Redis outage, and the metrics.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::json;

use loan_tracker::clock::{ManualClock, SharedClock};
use loan_tracker::http::rate_limit::Limiter;

use crate::support::{
    Needs, RedisNamespace, TestApp, TestResponse, eventually, may_run, redis_configured,
};

/// The app, and a second instance on the same database (and Redis) — or,
/// with no Redis to share a cache through, the same instance again.
async fn two_instances(app: &TestApp) -> axum::Router {
    if redis_configured() {
        loan_tracker::router::router(app.second_instance().await)
    } else {
        app.router.clone()
    }
}

async fn get_via(router: &axum::Router, path: &str, token: &str) -> TestResponse {
    let request = Request::builder()
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    crate::support::send_to(router, request).await
}

#[tokio::test]
async fn a_write_on_one_instance_is_read_at_once_on_another() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    let other = two_instances(&app).await;
    let path = format!("/loans/{loan_id}");

    // Both instances have the loan cached now.
    let before = get_via(&other, &path, &borrower.token).await;
    assert_eq!(before.body["totalPaid"], "0.00");
    assert_eq!(
        app.get(&path, &borrower.token).await.body["totalPaid"],
        "0.00"
    );
    assert_eq!(
        get_via(&other, &path, &borrower.token).await.body,
        before.body,
        "served from the cache"
    );

    app.pay(&borrower, loan_id, json!("100.00"), None)
        .await
        .assert_status(201);
    let after = get_via(&other, &path, &borrower.token).await;
    assert_eq!(
        after.body["totalPaid"], "100.00",
        "no stale loan after the write"
    );
    assert_eq!(after.body["schedule"][0]["status"], "PARTIAL");

    // Role changes reach the cached user behind every token, too.
    let promoted = app
        .patch(
            &format!("/users/{}/role", borrower.id),
            &admin.token,
            Some(json!({ "role": "MANAGER" })),
        )
        .await;
    promoted.assert_status(200);
    get_via(&other, "/users", &borrower.token)
        .await
        .assert_status(200);
}

#[tokio::test]
async fn the_rate_limit_holds_across_instances() {
    let app = TestApp::builder()
        .env("RATE_LIMIT_PER_MINUTE", "4")
        .build()
        .await;
    let other = two_instances(&app).await;
    // Unique per test run: the limit is counted per minute window.
    let user = app
        .register(&format!(
            "rl{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ))
        .await;
    // The limit counts per minute window of the service's clock, which
    // the test holds still: all six requests fall in one window.
    let mut statuses = Vec::new();
    for round in 0..3 {
        statuses.push(app.get("/users/me", &user.token).await.status.as_u16());
        statuses.push(
            get_via(&other, "/users/me", &user.token)
                .await
                .status
                .as_u16(),
        );
        let _ = round;
    }
    // The user's budget of 4 is shared: the 5th and 6th requests, on
    // whichever instance, are refused.
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
    // The next minute brings a new budget, on both instances.
    app.clock.advance(chrono::Duration::seconds(60));
    app.get("/users/me", &user.token).await.assert_status(200);
    get_via(&other, "/users/me", &user.token)
        .await
        .assert_status(200);
}

#[tokio::test]
async fn the_service_keeps_answering_while_redis_is_away_and_recovers() {
    // It runs a Redis server of its own.
    if !may_run(
        "the_service_keeps_answering_while_redis_is_away_and_recovers",
        Needs::Redis,
        redis_configured(),
    ) {
        return;
    }
    let redis = crate::support::RedisServer::start().await;
    let app = TestApp::builder()
        .env("REDIS_URL", &redis.url())
        .build()
        .await;
    let (borrower, _, loan_id) = app.golden_loan().await;
    let loan_path = format!("/loans/{loan_id}");
    let ready = app.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!(ready.body["checks"]["redis"], "ok");
    app.get(&loan_path, &borrower.token)
        .await
        .assert_status(200);

    let redis = redis.stop().await;
    let down = app.call(Method::GET, "/health/ready", None, None).await;
    down.assert_status(503);
    assert_eq!(
        down.body["checks"],
        json!({ "database": "ok", "redis": "failed" })
    );
    // Reads bypass the cache; rate limiting counts in process; writes work.
    let me = app.get("/users/me", &borrower.token).await;
    me.assert_status(200);
    assert!(me.header("ratelimit-limit").is_some());
    app.pay(&borrower, loan_id, json!("50.00"), None)
        .await
        .assert_status(201);
    let loan = app.get(&loan_path, &borrower.token).await;
    loan.assert_status(200);
    assert_eq!(loan.body["totalPaid"], "50.00");

    let _redis = redis.restart().await;
    let recovered = crate::support::eventually(Duration::from_secs(20), async || {
        app.call(Method::GET, "/health/ready", None, None)
            .await
            .status
            == 200
    })
    .await;
    assert!(recovered, "readiness recovers by itself once Redis is back");
    // The payment made while Redis was away could not invalidate the loan
    // cached before; the epoch moved instead, so it is not served stale.
    let fresh = app.get(&loan_path, &borrower.token).await;
    assert_eq!(fresh.body["totalPaid"], "50.00");
    app.pay(&borrower, loan_id, json!("25.00"), None)
        .await
        .assert_status(201);
    let loan = app.get(&loan_path, &borrower.token).await;
    assert_eq!(loan.body["totalPaid"], "75.00");
}

#[tokio::test]
async fn metrics_expose_the_named_series() {
    let app = TestApp::spawn().await;
    let (borrower, _, loan_id) = app.golden_loan().await;
    app.pay(&borrower, loan_id, json!("10.00"), None)
        .await
        .assert_status(201);
    app.get(&format!("/loans/{loan_id}"), &borrower.token)
        .await
        .assert_status(200);
    app.get(&format!("/loans/{loan_id}"), &borrower.token)
        .await
        .assert_status(200);
    app.get("/no/such/route", &borrower.token)
        .await
        .assert_problem(404);
    let admin = crate::support::test_user(
        &app.login(json!({ "username": "admin", "password": crate::support::PASSWORD }))
            .await
            .body,
    );
    app.run_job(&admin, "overdue-check", "2026-02-16").await;

    let scrape = app.call(Method::GET, "/metrics", None, None).await;
    scrape.assert_status(200);
    assert!(
        scrape
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain"))
    );
    let text = &scrape.text;
    let value = |series: &str| -> f64 {
        text.lines()
            .find(|line| line.starts_with(series))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
    };
    assert!(
        value("http_requests_total{method=\"POST\",route=\"/payments/{loanId}\",status=\"201\"}")
            >= 1.0
    );
    assert!(value("http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}") >= 1.0);
    assert!(
        value(
            "http_request_duration_seconds_count{method=\"GET\",route=\"/loans/{id}\",status=\"200\"}"
        ) >= 2.0
    );
    assert!(text.contains("http_request_duration_seconds_bucket{method=\"GET\",route=\"/loans/{id}\",status=\"200\",le=\"0.005\"}"));
    assert!(value("cache_requests_total{cache=\"loan\",result=\"hit\"}") >= 1.0);
    // The user behind a token is cached on PostgreSQL only (SQLite reads
    // it every time).
    if crate::support::postgres_configured() {
        assert!(value("cache_requests_total{cache=\"user\",result=\"miss\"}") >= 1.0);
    }
    assert!(value("db_pool_connections{pool=\"write\",state=\"idle\"}") >= 0.0);
    assert!(value("loans_applied_total") >= 1.0);
    assert!(value("loans_approved_total") >= 1.0);
    assert!(value("payments_total{currency=\"USD\"}") >= 1.0);
    assert!(value("payments_amount_minor_total{currency=\"USD\"}") >= 1000.0);
    assert!(value("job_runs_total{job=\"overdue-check\",status=\"SUCCEEDED\"}") >= 1.0);
    assert!(value("job_run_duration_seconds_count{job=\"overdue-check\"}") >= 1.0);
    assert!(
        value("email_outbox_pending") >= 3.0,
        "approval, payment and overdue notifications wait"
    );
    assert!(value("email_queue_depth") >= 0.0);
}

#[tokio::test]
async fn hsts_is_sent_when_configured() {
    let app = TestApp::builder()
        .env("HSTS_MAX_AGE_SECS", "31536000")
        .build()
        .await;
    let response = app.call(Method::GET, "/health/live", None, None).await;
    assert_eq!(
        response.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    let plain = TestApp::spawn().await;
    let response = plain.call(Method::GET, "/health/live", None, None).await;
    assert_eq!(response.header("strict-transport-security"), None);
}

#[test]
fn the_dashboard_only_charts_metrics_the_service_exports() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{root}/deploy/grafana/dashboards/loan-tracker.json"
        ))
        .expect("dashboard"),
    )
    .expect("dashboard JSON");
    let documented =
        std::fs::read_to_string(format!("{root}/src/metrics.rs")).expect("metrics module");
    let mut charted = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expression = target["expr"].as_str().expect("expr");
            for token in expression.split(|c: char| !(c.is_ascii_lowercase() || c == '_')) {
                // A histogram's series end in _bucket, _sum, _count; the
                // delinquency gauge is named by its label.
                let metric = if token.ends_with("_by_bucket") {
                    token
                } else {
                    ["_bucket", "_sum", "_count"]
                        .iter()
                        .fold(token, |name, suffix| {
                            name.strip_suffix(suffix).unwrap_or(name)
                        })
                };
                let is_metric = [
                    "_total",
                    "_seconds",
                    "_connections",
                    "_pending",
                    "_depth",
                    "_minor",
                    "_by_bucket",
                    "_written_off",
                ]
                .iter()
                .any(|suffix| metric.ends_with(suffix));
                if is_metric {
                    charted.push(metric.to_owned());
                }
            }
        }
    }
    assert!(charted.len() > 10, "{charted:?}");
    // The delinquency row.
    for metric in [
        "loans_by_bucket",
        "principal_outstanding_minor",
        "loans_written_off",
        "principal_written_off_minor",
    ] {
        assert!(
            charted.iter().any(|m| m == metric),
            "{metric} is not charted"
        );
    }
    for metric in charted {
        assert!(
            documented.contains(&format!("`{metric}`")),
            "{metric} is charted but not exported"
        );
    }
}

#[tokio::test]
async fn a_write_whose_invalidation_failed_is_never_served_stale() {
    // It runs a Redis server of its own.
    if !may_run(
        "a_write_whose_invalidation_failed_is_never_served_stale",
        Needs::Redis,
        redis_configured(),
    ) {
        return;
    }
    let redis = crate::support::RedisServer::start().await;
    let app = TestApp::builder()
        .env("REDIS_URL", &redis.url())
        .build()
        .await;
    let other = loan_tracker::router::router(app.second_instance().await);
    let (borrower, _, loan_id) = app.golden_loan().await;
    let path = format!("/loans/{loan_id}");
    assert_eq!(
        app.get(&path, &borrower.token).await.body["totalPaid"],
        "0.00"
    );
    assert_eq!(
        get_via(&other, &path, &borrower.token).await.body["totalPaid"],
        "0.00"
    );

    // Redis refuses writes for a moment (its data stays): the payment
    // commits, but bumping the loan's generation fails.
    let client = redis::Client::open(redis.url()).expect("client");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("WRITE")
        .query_async(&mut connection)
        .await
        .expect("pause writes");
    app.pay(&borrower, loan_id, json!("10.00"), None)
        .await
        .assert_status(201);
    assert_eq!(
        app.get(&path, &borrower.token).await.body["totalPaid"],
        "10.00",
        "bypassing its cache"
    );

    // Once Redis takes writes again, the epoch moves; no instance serves the
    // loan as it was before the payment.
    let settled = eventually(Duration::from_secs(15), async || {
        get_via(&other, &path, &borrower.token).await.body["totalPaid"] == "10.00"
    })
    .await;
    assert!(settled, "the other instance still serves the replaced loan");
    let _ = &redis;
}

#[tokio::test]
async fn the_access_log_names_request_user_route_status_and_latency() {
    // A real process, so that the test reads the very lines the service
    // writes to its output.
    let app = TestApp::spawn().await;
    let service = crate::processes::Service::start(
        &app.vars,
        &[("RUST_LOG", "info,loan_tracker::access=debug")],
    )
    .await;
    let api = crate::processes::Client::new(service.url(""));
    api.expect(
        Method::POST,
        "/auth/register",
        None,
        Some(json!({ "email": "logged@example.com", "username": "logged", "password": "logged password" })),
        201,
    )
    .await;
    let signed_in = api
        .expect(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({ "username": "logged", "password": "logged password" })),
            200,
        )
        .await;
    let token = signed_in["accessToken"].as_str().expect("access token");
    let user_id = signed_in["user"]["id"].as_str().expect("user id");
    let client = &api.http;
    let read = client
        .get(service.url("/users/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("read");
    let missing = client
        .get(service.url(&format!("/loans/{}", uuid::Uuid::new_v4())))
        .bearer_auth(token)
        .send()
        .await
        .expect("missing loan");
    assert_eq!(read.status().as_u16(), 200);
    assert_eq!(missing.status().as_u16(), 404);

    let access_lines = || -> Vec<serde_json::Value> {
        service
            .log_text()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|line| line["target"] == "loan_tracker::access")
            // Start-up polled the readiness check; those lines are not ours.
            .filter(|line| line["route"] != "/health/ready")
            .collect()
    };
    // Lines reach the output within moments (they are written in batches).
    assert!(eventually(Duration::from_secs(5), async || access_lines().len() >= 4).await);
    let lines = access_lines();
    assert_eq!(lines.len(), 4, "{}", service.log_text());
    let route_of = |line: &serde_json::Value| line["route"].as_str().map(str::to_owned);
    assert_eq!(route_of(&lines[0]).as_deref(), Some("/auth/register"));
    assert_eq!(route_of(&lines[1]).as_deref(), Some("/auth/login"));
    for (line, response, level, route, status) in [
        (&lines[2], &read, "DEBUG", "/users/me", 200),
        (&lines[3], &missing, "INFO", "/loans/{id}", 404),
    ] {
        assert_eq!(line["level"], level, "{line}");
        assert_eq!(line["method"], "GET", "{line}");
        assert_eq!(line["route"], route, "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["user_id"], user_id, "{line}");
        assert_eq!(
            line["request_id"].as_str(),
            response
                .headers()
                .get("x-request-id")
                .and_then(|id| id.to_str().ok()),
            "{line}"
        );
        assert!(
            line["latency_ms"].as_f64().is_some_and(|ms| ms > 0.0),
            "{line}"
        );
    }
    let log = service.log_text();
    assert!(!log.contains(token), "tokens never reach the log");
    assert!(
        !log.contains("logged password"),
        "passwords never reach the log"
    );
}

/// Two instances that reserve counts in chunks still admit exactly the
/// limit between them, however their traffic is split.
#[tokio::test]
async fn instances_sharing_redis_admit_exactly_the_limit_between_them() {
    let test = "instances_sharing_redis_admit_exactly_the_limit_between_them";
    if !may_run(test, Needs::Redis, redis_configured()) {
        return;
    }
    let url = std::env::var("TEST_REDIS_URL").unwrap_or_default();
    let client = redis::Client::open(url.as_str()).expect("redis url");
    let prefix = format!("rltest-{}", uuid::Uuid::new_v4().simple());
    let _keys = RedisNamespace::new(Some(url.clone()), vec![format!("{prefix}:*")]);
    // The count is per minute window: a clock held at the start of one
    // keeps every request in it.
    let clock: SharedClock = std::sync::Arc::new(ManualClock::new(
        chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("moment"),
    ));
    let mut instances = Vec::new();
    for _ in 0..2 {
        let connection = client.get_connection_manager().await.expect("redis");
        instances.push(Limiter::new(
            "api",
            1000,
            Some(connection),
            &prefix,
            clock.clone(),
        ));
    }

    let first = instances[0].check("client").await;
    assert!(first.allowed);
    assert_eq!(first.remaining, 999);
    let mut admitted = [1_u32, 0];
    let mut refused = [0_u32, 0];
    for n in 1..3000 {
        let which = usize::from(n % 3 == 0);
        if instances[which].check("client").await.allowed {
            admitted[which] += 1;
        } else {
            refused[which] += 1;
        }
    }
    assert_eq!(admitted[0] + admitted[1], 1000, "admitted {admitted:?}");
    assert!(admitted[0] > 0 && admitted[1] > 0, "admitted {admitted:?}");
    assert_eq!(refused[0] + refused[1], 2000);
}
