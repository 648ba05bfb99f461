//! Reads with a replica (`DATABASE_READ_URL`): lists read the replica,
//! except for a while after the reader's own write; single records always
//! read the primary. The "replica" here is a database that never catches
//! up, so every read it serves is visible.

use serde_json::json;

use crate::support::{Needs, TestApp, may_run, postgres_configured};

fn items(body: &serde_json::Value) -> usize {
    body["items"].as_array().map_or(usize::MAX, Vec::len)
}

#[tokio::test]
async fn clients_read_their_own_writes_and_lists_otherwise_use_the_replica() {
    // A replica is a PostgreSQL feature.
    if !may_run(
        "clients_read_their_own_writes_and_lists_otherwise_use_the_replica",
        Needs::Postgres,
        postgres_configured(),
    ) {
        return;
    }
    let app = TestApp::builder().with_lagging_replica().build().await;
    let alice = app.register("alice").await;
    // One record by id: the primary, though the replica has never seen her.
    app.get("/users/me", &alice.token).await.assert_status(200);

    let loan_id = app.apply(&alice, "1000.00", 10).await;
    let own = app
        .get(&format!("/loans/user/{}", alice.id), &alice.token)
        .await;
    assert_eq!(items(&own.body), 1, "her own write, read right after it");
    app.get(&format!("/loans/{loan_id}"), &alice.token)
        .await
        .assert_status(200);

    // READ_YOUR_WRITES_SECS (10 s) later her lists come from the replica.
    app.clock.advance(chrono::Duration::seconds(11));
    let later = app
        .get(&format!("/loans/user/{}", alice.id), &alice.token)
        .await;
    assert_eq!(items(&later.body), 0, "served by the (lagging) replica");
    app.get(&format!("/loans/{loan_id}"), &alice.token)
        .await
        .assert_status(200);

    // Staff lists too; their own write sends them to the primary.
    let admin = app.admin().await;
    app.clock.advance(chrono::Duration::seconds(11));
    assert_eq!(items(&app.get("/loans", &admin.token).await.body), 0);
    app.approve(&admin, loan_id, None).await;
    let after_write = app.get("/loans", &admin.token).await;
    assert_eq!(items(&after_write.body), 1);
    assert_eq!(after_write.body["items"][0]["status"], "APPROVED");

    // With Redis the rule holds on every instance.
    if crate::support::redis_configured() {
        let other = loan_tracker::router::router(app.second_instance().await);
        app.pay(&alice, loan_id, json!("10.00"), None)
            .await
            .assert_status(201);
        let request = axum::http::Request::builder()
            .uri(format!("/payments/user/{}", alice.id))
            .header("authorization", format!("Bearer {}", alice.token))
            .body(axum::body::Body::empty())
            .expect("request");
        let elsewhere = crate::support::send_to(&other, request).await;
        assert_eq!(
            items(&elsewhere.body),
            1,
            "the other instance knows she just wrote"
        );
    }
}

#[tokio::test]
async fn a_replica_needs_postgresql() {
    let vars = [
        ("DATABASE_URL", "sqlite:///tmp/x.db"),
        ("DATABASE_READ_URL", "postgres://postgres@127.0.0.1/replica"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let error = loan_tracker::config::Config::from_map(&vars).expect_err("refused");
    assert_eq!(error.variable, "DATABASE_READ_URL");
}
