//! `/auth`: registration, login, token rotation and token checks.

use axum::body::Body;
use axum::http::{Method, Request};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use crate::support::{PASSWORD, TestApp, start_time};

#[tokio::test]
async fn register_creates_a_user_and_signs_them_in() {
    let app = TestApp::builder()
        .env("ACCESS_TOKEN_TTL_SECS", "900")
        .build()
        .await;
    let response = app
        .post(
            "/auth/register",
            None,
            json!({
                "email": "  Alice@Example.COM ",
                "username": "Alice_1",
                "password": PASSWORD,
                "firstName": "Alice",
                "lastName": "Liddell"
            }),
        )
        .await;
    response.assert_status(201);
    let body = &response.body;
    let user = &body["user"];
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["username"], "Alice_1");
    assert_eq!(user["role"], "USER");
    assert_eq!(user["createdAt"], "2026-01-15T10:00:00Z");
    assert_eq!(user["profile"]["firstName"], "Alice");
    assert_eq!(user["profile"]["lastName"], "Liddell");
    assert_eq!(user["profile"]["phoneNumber"], json!(null));
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["expiresIn"], 900);
    assert!(
        !response.text.contains("argon2"),
        "never a password hash: {}",
        response.text
    );
    let keys: Vec<&String> = user.as_object().expect("object").keys().collect();
    assert_eq!(keys.len(), 6, "{keys:?}");

    let token = body["accessToken"].as_str().expect("token");
    let me = app.get("/users/me", token).await;
    me.assert_status(200);
    assert_eq!(me.body["id"], user["id"]);
    assert_eq!(app.audit_actions().await, ["USER_REGISTERED"]);
}

#[tokio::test]
async fn registration_validation_names_every_bad_field() {
    let app = TestApp::spawn().await;
    app.post("/auth/register", None, json!({}))
        .await
        .assert_invalid_fields(&["email", "username", "password"]);
    app.post(
        "/auth/register",
        None,
        json!({ "email": "not-an-email", "username": "ab", "password": "short" }),
    )
    .await
    .assert_invalid_fields(&["email", "username", "password"]);
    app.post(
        "/auth/register",
        None,
        json!({ "email": 42, "username": "has space", "password": "x".repeat(129) }),
    )
    .await
    .assert_invalid_fields(&["email", "username", "password"]);
    app.post(
        "/auth/register",
        None,
        json!({ "email": "a@example.com", "username": "abc", "password": PASSWORD, "firstName": "Only" }),
    )
    .await
    .assert_invalid_fields(&["lastName"]);
    assert!(app.audit_actions().await.is_empty(), "nothing is written");
}

#[tokio::test]
async fn a_role_field_or_any_unknown_field_is_a_bad_request() {
    let app = TestApp::spawn().await;
    for extra in [json!({ "role": "ADMIN" }), json!({ "isAdmin": true })] {
        let mut body =
            json!({ "email": "eve@example.com", "username": "eve", "password": PASSWORD });
        for (key, value) in extra.as_object().expect("object") {
            body[key] = value.clone();
        }
        app.post("/auth/register", None, body)
            .await
            .assert_problem(400);
    }
    // The user was never created: the same registration now succeeds.
    app.register("eve").await;
}

#[tokio::test]
async fn malformed_json_and_wrong_content_types_are_bad_requests() {
    let app = TestApp::spawn().await;
    let malformed = Request::builder()
        .method(Method::POST)
        .uri("/auth/register")
        .header("content-type", "application/json")
        .body(Body::from("{\"email\": "))
        .expect("request");
    let response = app.send(malformed).await;
    response.assert_problem(400);
    assert!(
        response.body["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("Malformed JSON"))
    );

    let form = Request::builder()
        .method(Method::POST)
        .uri("/auth/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("email=a@b.c&password=x"))
        .expect("request");
    app.send(form).await.assert_problem(400);

    let array = Request::builder()
        .method(Method::POST)
        .uri("/auth/login")
        .header("content-type", "application/json")
        .body(Body::from("[]"))
        .expect("request");
    app.send(array).await.assert_problem(400);
}

#[tokio::test]
async fn duplicate_email_or_username_is_a_conflict_ignoring_case() {
    let app = TestApp::spawn().await;
    app.register("bob").await;
    let same_email = app
        .post(
            "/auth/register",
            None,
            json!({ "email": "BOB@example.com", "username": "bobby", "password": PASSWORD }),
        )
        .await;
    assert!(
        same_email.assert_problem(409)["detail"]
            .as_str()
            .is_some_and(|d| d.contains("email"))
    );
    let same_username = app
        .post(
            "/auth/register",
            None,
            json!({ "email": "other@example.com", "username": "BoB", "password": PASSWORD }),
        )
        .await;
    assert!(
        same_username.assert_problem(409)["detail"]
            .as_str()
            .is_some_and(|d| d.contains("username"))
    );
}

/// Invisible characters cannot make a second account that looks like
/// someone else's, and markup is not an address.
#[tokio::test]
async fn lookalike_addresses_and_names_are_refused() {
    let app = TestApp::spawn().await;
    let first = app
        .post(
            "/auth/register",
            None,
            json!({ "email": "zw@example.com", "username": "zwuser", "password": "long enough pw" }),
        )
        .await;
    first.assert_status(201);
    let users_before = app.count("users").await;
    for (index, email) in [
        "\u{200B}zw@example.com",
        "\u{FEFF}zw@example.com",
        "zw\u{200D}@example.com",
        "zw\u{00AD}@example.com",
        "zw@example.com\u{202E}",
        "<script>@x.com",
    ]
    .into_iter()
    .enumerate()
    {
        app.post(
            "/auth/register",
            None,
            json!({ "email": email, "username": format!("look{index}"), "password": "long enough pw" }),
        )
        .await
        .assert_invalid_fields(&["email"]);
    }
    for username in ["\u{200B}zwuser", "zwuser\u{200D}", "zw\u{202E}user"] {
        app.post(
            "/auth/register",
            None,
            json!({ "email": "other@example.com", "username": username, "password": "long enough pw" }),
        )
        .await
        .assert_invalid_fields(&["username"]);
    }
    assert_eq!(
        app.count("users").await,
        users_before,
        "nothing was created"
    );
}

#[tokio::test]
async fn login_accepts_email_or_username_and_refuses_alike_otherwise() {
    let app = TestApp::spawn().await;
    let carol = app.register("carol").await;

    let by_email = app
        .login(json!({ "email": "Carol@Example.com", "password": PASSWORD }))
        .await;
    by_email.assert_status(200);
    assert_eq!(by_email.body["user"]["id"], json!(carol.id));
    let by_username = app
        .login(json!({ "username": "CAROL", "password": PASSWORD }))
        .await;
    by_username.assert_status(200);
    assert_ne!(
        by_username.body["refreshToken"],
        by_email.body["refreshToken"]
    );

    let wrong_password = app
        .login(json!({ "email": "carol@example.com", "password": "wrong password" }))
        .await;
    let unknown_email = app
        .login(json!({ "email": "nobody@example.com", "password": PASSWORD }))
        .await;
    let unknown_username = app
        .login(json!({ "username": "nobody", "password": PASSWORD }))
        .await;
    wrong_password.assert_problem(401);
    assert_eq!(wrong_password.body, unknown_email.body);
    assert_eq!(wrong_password.body, unknown_username.body);
    assert_eq!(unknown_email.status, unknown_username.status);

    let failures = app.audit_rows("LOGIN_FAILED").await;
    assert_eq!(failures.len(), 3);
    assert_eq!(
        failures[0].entity_id,
        Some(carol.id),
        "the user the identifier named"
    );
    assert_eq!(failures[0].actor_id, None);
    assert_eq!(failures[1].entity_id, None, "an identifier naming nobody");
    assert_eq!(failures[1].ip.as_deref(), Some("127.0.0.1"));
    assert!(failures[1].request_id.is_some());
    assert_eq!(app.audit_rows("LOGIN_SUCCEEDED").await.len(), 2);
    assert!(
        !failures
            .iter()
            .any(|row| row.details.to_string().contains("wrong password"))
    );
}

#[tokio::test]
async fn login_needs_exactly_one_identifier_and_a_password() {
    let app = TestApp::spawn().await;
    app.login(json!({ "password": PASSWORD }))
        .await
        .assert_invalid_fields(&["email"]);
    app.login(json!({ "email": "a@example.com", "username": "a", "password": PASSWORD }))
        .await
        .assert_invalid_fields(&["username"]);
    app.login(json!({ "email": "a@example.com" }))
        .await
        .assert_invalid_fields(&["password"]);
    app.login(json!({ "email": ["a"], "password": 5 }))
        .await
        .assert_invalid_fields(&["email", "password"]);
}

#[tokio::test]
async fn unknown_user_and_wrong_password_cost_the_same_work_and_time() {
    let app = TestApp::spawn().await;
    let work = || app.state.passwords.blocks_filled();
    let before = work();
    app.register("dora").await;
    let one_hash = work() - before;
    assert!(one_hash > 0, "registering hashes the password");

    let wrong_password = json!({ "email": "dora@example.com", "password": "wrong password" });
    let unknown_user = json!({ "email": "ghost@example.com", "password": "wrong password" });
    let time = |body: &serde_json::Value| {
        let app = &app;
        let body = body.clone();
        async move {
            let before = work();
            let started = std::time::Instant::now();
            app.login(body).await.assert_problem(401);
            (started.elapsed(), work() - before)
        }
    };
    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..5 {
        let (elapsed, blocks) = time(&wrong_password).await;
        // Exactly one full verification at today's parameters each: an
        // unknown user is checked against a dummy hash, not skipped.
        assert_eq!(blocks, one_hash, "argon2 work for a wrong password");
        wrong.push(elapsed);
        let (elapsed, blocks) = time(&unknown_user).await;
        assert_eq!(blocks, one_hash, "argon2 work for an unknown user");
        unknown.push(elapsed);
    }
    // The fastest of five is the one least slowed by other tests running
    // beside this one on the same cores.
    let (wrong, unknown) = (
        wrong.iter().min().expect("five logins").as_secs_f64(),
        unknown.iter().min().expect("five logins").as_secs_f64(),
    );
    let ratio = wrong.max(unknown) / wrong.min(unknown);
    assert!(
        ratio < 3.0,
        "fastest wrong password {wrong:.4}s vs unknown user {unknown:.4}s"
    );
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_whole_family() {
    let app = TestApp::spawn().await;
    let erin = app.register("erin").await;

    let first = app
        .post(
            "/auth/refresh",
            None,
            json!({ "refreshToken": erin.refresh_token }),
        )
        .await;
    first.assert_status(200);
    let second_token = first.body["refreshToken"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_ne!(second_token, erin.refresh_token);
    let access = first.body["accessToken"].as_str().expect("access");
    app.get("/users/me", access).await.assert_status(200);

    let second = app
        .post(
            "/auth/refresh",
            None,
            json!({ "refreshToken": second_token }),
        )
        .await;
    second.assert_status(200);
    let third_token = second.body["refreshToken"]
        .as_str()
        .expect("token")
        .to_owned();

    // The first token was spent: presenting it again means it was copied.
    app.post(
        "/auth/refresh",
        None,
        json!({ "refreshToken": erin.refresh_token }),
    )
    .await
    .assert_problem(401);
    // ... so every token of the family is now dead, the newest included.
    app.post(
        "/auth/refresh",
        None,
        json!({ "refreshToken": third_token }),
    )
    .await
    .assert_problem(401);
    let reuse = app.audit_rows("REFRESH_REUSE_DETECTED").await;
    assert_eq!(reuse.len(), 1);
    assert_eq!(reuse[0].actor_id, Some(erin.id));

    // Other login sessions are a different family and keep working.
    let login = app
        .login(json!({ "username": "erin", "password": PASSWORD }))
        .await;
    let other = login.body["refreshToken"].as_str().expect("token");
    app.post("/auth/refresh", None, json!({ "refreshToken": other }))
        .await
        .assert_status(200);
}

#[tokio::test]
async fn refresh_tokens_expire() {
    let app = TestApp::builder()
        .env("REFRESH_TOKEN_TTL_SECS", "60")
        .build()
        .await;
    let frank = app.register("frank").await;
    app.clock.advance(chrono::Duration::seconds(61));
    app.post(
        "/auth/refresh",
        None,
        json!({ "refreshToken": frank.refresh_token }),
    )
    .await
    .assert_problem(401);
    app.post("/auth/refresh", None, json!({ "refreshToken": "made-up" }))
        .await
        .assert_problem(401);
    app.post("/auth/refresh", None, json!({}))
        .await
        .assert_invalid_fields(&["refreshToken"]);
}

#[tokio::test]
async fn logout_revokes_the_session() {
    let app = TestApp::spawn().await;
    let gina = app.register("gina").await;
    let response = app
        .post(
            "/auth/logout",
            None,
            json!({ "refreshToken": gina.refresh_token }),
        )
        .await;
    response.assert_status(204);
    assert!(response.text.is_empty());
    app.post(
        "/auth/refresh",
        None,
        json!({ "refreshToken": gina.refresh_token }),
    )
    .await
    .assert_problem(401);
    // Logging out twice is harmless, and audited once.
    app.post(
        "/auth/logout",
        None,
        json!({ "refreshToken": gina.refresh_token }),
    )
    .await
    .assert_status(204);
    assert_eq!(app.audit_rows("LOGOUT").await.len(), 1);
}

#[tokio::test]
async fn tampered_expired_or_missing_tokens_are_refused() {
    let app = TestApp::builder()
        .env("ACCESS_TOKEN_TTL_SECS", "900")
        .build()
        .await;
    let hank = app.register("hank").await;
    app.call(Method::GET, "/users/me", None, None)
        .await
        .assert_problem(401);
    app.get("/users/me", "not.a.jwt").await.assert_problem(401);

    let parts: Vec<&str> = hank.token.split('.').collect();
    assert_eq!(parts.len(), 3);
    // alg "none" with the signature dropped.
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    app.get("/users/me", &format!("{none_header}.{}.", parts[1]))
        .await
        .assert_problem(401);
    // The payload changed to claim ADMIN, with the original signature.
    let claims = URL_SAFE_NO_PAD.decode(parts[1]).expect("base64");
    let forged = String::from_utf8(claims)
        .expect("utf8")
        .replace("\"USER\"", "\"ADMIN\"");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(forged),
        parts[2]
    );
    app.get("/users/me", &forged).await.assert_problem(401);
    // Signed with another key.
    let other_key = jsonwebtoken::EncodingKey::from_secret(b"another-secret-0123456789abcdef0123");
    let now = start_time().timestamp();
    let claims =
        json!({ "sub": hank.id, "role": "USER", "iat": now, "exp": now + 600, "jti": hank.id });
    let wrong_key = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &other_key)
        .expect("encode");
    app.get("/users/me", &wrong_key).await.assert_problem(401);
    // Expired: the token lives 900 s.
    app.get("/users/me", &hank.token).await.assert_status(200);
    app.clock.advance(chrono::Duration::seconds(900));
    app.get("/users/me", &hank.token).await.assert_problem(401);
}

#[tokio::test]
async fn login_and_registration_are_rate_limited_per_ip() {
    let app = TestApp::builder()
        .env("AUTH_RATE_LIMIT_PER_MINUTE", "3")
        .build()
        .await;
    app.register("ivan").await;
    for _ in 0..2 {
        app.login(json!({ "username": "ivan", "password": "wrong password" }))
            .await
            .assert_problem(401);
    }
    let limited = app
        .login(json!({ "username": "ivan", "password": PASSWORD }))
        .await;
    limited.assert_problem(429);
    let retry_after: u64 = limited
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    app.post(
        "/auth/register",
        None,
        json!({ "email": "j@example.com", "username": "jane", "password": PASSWORD }),
    )
    .await
    .assert_problem(429);
}

#[tokio::test]
async fn the_configured_admin_is_created_at_start_up() {
    let app = TestApp::builder()
        .env("ADMIN_EMAIL", "root@example.com")
        .env("ADMIN_USERNAME", "root")
        .env("ADMIN_PASSWORD", "root password 1")
        .build()
        .await;
    let login = app
        .login(json!({ "email": "root@example.com", "password": "root password 1" }))
        .await;
    login.assert_status(200);
    assert_eq!(login.body["user"]["role"], "ADMIN");
    // Starting again with the same settings changes nothing.
    let created = loan_tracker::auth::service::ensure_admin(
        &app.state,
        loan_tracker::users::domain::Email::parse("root@example.com".to_owned()).expect("email"),
        loan_tracker::users::domain::Username::parse("root".to_owned()).expect("username"),
        loan_tracker::users::domain::NewPassword::parse("root password 1".to_owned())
            .expect("password"),
    )
    .await
    .expect("ensure admin");
    assert!(!created);
}

#[tokio::test]
async fn a_login_replaces_a_hash_stored_with_earlier_parameters() {
    use argon2::PasswordHasher;
    use loan_tracker::db::entities::user;
    use sea_orm::{ConnectionTrait, EntityTrait};

    let app = TestApp::spawn().await;
    let dora = app.register("dora").await;
    let stored = || async {
        user::Entity::find_by_id(dora.id)
            .one(&app.state.db.write)
            .await
            .expect("read")
            .expect("dora")
            .password_hash
    };
    assert!(stored().await.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"));

    // As an earlier version stored it: 19 MiB, 2 iterations.
    let earlier = argon2::Argon2::default()
        .hash_password(PASSWORD.as_bytes())
        .expect("hash")
        .to_string();
    assert!(earlier.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    app.state
        .db
        .write
        .execute_unprepared(&format!(
            "UPDATE users SET password_hash = '{earlier}' WHERE username = 'dora'"
        ))
        .await
        .expect("store the earlier hash");

    let wrong = app
        .login(json!({ "username": "dora", "password": "not the password" }))
        .await;
    wrong.assert_problem(401);
    assert_eq!(stored().await, earlier, "a failed login changes nothing");

    app.login(json!({ "username": "dora", "password": PASSWORD }))
        .await
        .assert_status(200);
    let upgraded = stored().await;
    assert!(
        upgraded.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"),
        "{upgraded}"
    );
    app.login(json!({ "username": "dora", "password": PASSWORD }))
        .await
        .assert_status(200);
    assert_eq!(stored().await, upgraded, "a current hash is kept");
}
