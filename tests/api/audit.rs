//! `GET /audit-logs`.

use serde_json::json;

use crate::support::{PASSWORD, TestApp};

#[tokio::test]
async fn admins_read_the_trail_with_filters() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let manager = app.manager().await;
    let user = app.register("ulla").await;
    app.login(json!({ "username": "ulla", "password": PASSWORD }))
        .await
        .assert_status(200);
    app.login(json!({ "username": "ulla", "password": "nope nope" }))
        .await
        .assert_problem(401);

    app.get("/audit-logs", &user.token)
        .await
        .assert_problem(403);
    app.get("/audit-logs", &manager.token)
        .await
        .assert_problem(403);

    let all = app.get("/audit-logs?limit=100", &admin.token).await;
    all.assert_status(200);
    let actions: Vec<&str> = all.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(
        actions,
        [
            "LOGIN_FAILED",
            "LOGIN_SUCCEEDED",
            "USER_REGISTERED",
            "USER_REGISTERED",
            "USER_REGISTERED"
        ],
        "newest first"
    );
    let newest = &all.body["items"][0];
    assert_eq!(newest["actorId"], json!(null));
    assert_eq!(newest["entityType"], "USER");
    assert_eq!(newest["entityId"], json!(user.id));
    assert_eq!(newest["ip"], "127.0.0.1");
    assert!(newest["requestId"].is_string());
    assert_eq!(newest["createdAt"], "2026-01-15T10:00:00Z");

    let by_action = app
        .get("/audit-logs?action=LOGIN_SUCCEEDED", &admin.token)
        .await;
    assert_eq!(by_action.body["items"].as_array().map(Vec::len), Some(1));
    let by_entity = app
        .get(&format!("/audit-logs?entityId={}", user.id), &admin.token)
        .await;
    assert_eq!(by_entity.body["items"].as_array().map(Vec::len), Some(3));
    let by_actor = app
        .get(&format!("/audit-logs?actorId={}", user.id), &admin.token)
        .await;
    assert_eq!(by_actor.body["items"].as_array().map(Vec::len), Some(2));
    let window = app
        .get(
            "/audit-logs?from=2026-01-15T09:00:00Z&to=2026-01-15T11:00:00Z",
            &admin.token,
        )
        .await;
    assert_eq!(window.body["items"].as_array().map(Vec::len), Some(5));
    let later = app
        .get("/audit-logs?from=2026-01-15T10:00:01Z", &admin.token)
        .await;
    assert_eq!(later.body["items"].as_array().map(Vec::len), Some(0));

    app.get(
        "/audit-logs?action=DANCED&actorId=x&from=yesterday",
        &admin.token,
    )
    .await
    .assert_invalid_fields(&["action", "actorId", "from"]);
}
