//! What every response shares: problem+json errors, request ids, headers,
//! limits, health and documentation.

use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::Value;
use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = TestApp::spawn().await;
    let missing = app.call(Method::GET, "/no/such/thing", None, None).await;
    missing.assert_problem(404);
    let wrong_method = app.call(Method::DELETE, "/auth/login", None, None).await;
    wrong_method.assert_problem(405);
    assert_eq!(wrong_method.header("allow"), Some("POST"));
}

#[tokio::test]
async fn every_response_has_a_request_id_and_security_headers() {
    let app = TestApp::spawn().await;
    let generated = app.call(Method::GET, "/health/live", None, None).await;
    generated.assert_status(200);
    assert_eq!(generated.body, json!({ "status": "ok" }));
    let id = generated.header("x-request-id").expect("request id");
    assert!(uuid::Uuid::parse_str(id).is_ok());
    assert_eq!(generated.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(generated.header("x-frame-options"), Some("DENY"));
    assert!(
        generated
            .header("content-security-policy")
            .is_some_and(|csp| csp.contains("default-src 'none'"))
    );
    assert!(generated.header("server").is_none());

    let echoed = app
        .send(
            Request::builder()
                .uri("/no/such/thing")
                .header("x-request-id", "client-chosen-42")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(echoed.header("x-request-id"), Some("client-chosen-42"));
    assert_eq!(echoed.header("x-frame-options"), Some("DENY"));
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_refused() {
    let app = TestApp::spawn().await;
    let padding = "x".repeat(1024 * 1024);
    let body =
        json!({ "email": "a@example.com", "username": "abc", "password": padding }).to_string();
    let response = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/auth/register")
                .header("content-type", "application/json")
                .body(Body::from(body))
                .expect("request"),
        )
        .await;
    response.assert_problem(413);
}

#[tokio::test]
async fn readiness_reports_the_database() {
    let app = TestApp::spawn().await;
    let ready = app.call(Method::GET, "/health/ready", None, None).await;
    ready.assert_status(200);
    let expected = if crate::support::redis_configured() {
        json!({ "status": "ok", "checks": { "database": "ok", "redis": "ok" } })
    } else {
        json!({ "status": "ok", "checks": { "database": "ok" } })
    };
    assert_eq!(ready.body, expected);
}

#[tokio::test]
async fn the_openapi_document_describes_the_served_routes() {
    let app = TestApp::spawn().await;
    let response = app.call(Method::GET, "/openapi.json", None, None).await;
    response.assert_status(200);
    let document = &response.body;
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1"))
    );
    let paths = document["paths"].as_object().expect("paths");
    for path in [
        "/auth/register",
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/users/me",
        "/users",
        "/users/{id}",
        "/users/{id}/role",
        "/users/{id}/profile",
        "/users/me/profile",
        "/audit-logs",
        "/health/live",
        "/health/ready",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    assert_eq!(
        document["paths"]["/users/{id}/role"]["patch"]["responses"]["409"]["content"]["application/problem+json"]
            ["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
    assert!(document["components"]["securitySchemes"]["bearerAuth"].is_object());
    assert_eq!(
        serde_json::to_value(loan_tracker::router::openapi_document(&app.state.config))
            .expect("document"),
        *document,
        "the CLI prints what the server serves"
    );
}

/// `docs/openapi.json` is the contract as a reader of the repository sees
/// it: any change to what the server documents must show up there.
#[tokio::test]
async fn the_committed_openapi_document_is_what_the_server_serves() {
    let app = TestApp::spawn().await;
    let served = app.call(Method::GET, "/openapi.json", None, None).await;
    served.assert_status(200);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).expect("docs/openapi.json is committed"),
    )
    .expect("docs/openapi.json is JSON");
    assert!(
        committed == served.body,
        "docs/openapi.json differs from the served document; refresh it with \
         `cargo run -- openapi > docs/openapi.json` and review the diff"
    );
}

/// What generators and validators trip over is not in the document:
/// optional bodies are plain references, headers are never null, numbers
/// carry no `multipleOf`, lists reference their item schema, operation
/// ids are unique, and responses declare the headers they carry.
#[tokio::test]
async fn the_document_is_one_generators_and_validators_accept() {
    let app = TestApp::spawn().await;
    let document = app
        .call(Method::GET, "/openapi.json", None, None)
        .await
        .body;
    let text = document.to_string();
    assert!(!text.contains("multipleOf"));
    let mut operation_ids = std::collections::HashSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            let id = operation["operationId"].as_str().expect("operationId");
            assert!(operation_ids.insert(id.to_owned()), "{id} twice");
            for content in operation["requestBody"]["content"]
                .as_object()
                .into_iter()
                .flat_map(|c| c.values())
            {
                assert!(
                    content["schema"]["oneOf"].is_null(),
                    "{method} {path}: {content}"
                );
            }
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                if parameter["in"] == "header" {
                    assert_eq!(parameter["schema"]["type"], "string", "{method} {path}");
                }
            }
            for (status, response) in operation["responses"].as_object().expect("responses") {
                let headers = &response["headers"];
                assert_eq!(
                    headers["X-Request-Id"]["$ref"], "#/components/headers/X-Request-Id",
                    "{method} {path} {status}"
                );
                if status == "429" {
                    assert_eq!(
                        headers["Retry-After"]["$ref"],
                        "#/components/headers/Retry-After"
                    );
                }
            }
        }
    }
    let approve = &document["paths"]["/loans/{id}/approve"]["patch"]["requestBody"];
    assert_eq!(approve["required"], false);
    assert_eq!(
        approve["content"]["application/json"]["schema"],
        json!({ "$ref": "#/components/schemas/ApproveRequest" })
    );
    let payment = &document["paths"]["/payments/{loanId}"]["post"];
    let key = payment["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "Idempotency-Key")
        .expect("key");
    assert_eq!(
        key["schema"],
        json!({ "type": "string", "minLength": 1, "maxLength": 255 })
    );
    assert_eq!(
        payment["responses"]["201"]["headers"]["Idempotent-Replayed"]["$ref"],
        "#/components/headers/Idempotent-Replayed"
    );
    let schemas = document["components"]["schemas"]
        .as_object()
        .expect("schemas");
    for (name, schema) in schemas.iter().filter(|(name, _)| name.starts_with("Page_")) {
        let item = name.trim_start_matches("Page_");
        assert_eq!(
            schema["properties"]["items"]["items"],
            json!({ "$ref": format!("#/components/schemas/{item}") })
        );
    }
    let schedule = &schemas["LoanView"]["properties"]["schedule"];
    assert_eq!(schedule["type"], "array");
    assert!(
        !schemas["LoanView"]["required"]
            .as_array()
            .expect("required")
            .contains(&json!("schedule"))
    );
    // The headers the document promises are the ones a response carries.
    let answer = app.call(Method::GET, "/loans", None, None).await;
    for name in [
        "x-request-id",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
    ] {
        assert!(answer.header(name).is_some(), "{name}");
    }
}

/// The enum lists in the document are the ones the code parses and writes.
#[tokio::test]
async fn the_documented_enums_are_the_declared_ones() {
    use loan_tracker::enums::{AuditAction, InstallmentStatus, LoanStatus, NotificationKind, Role};
    let app = TestApp::spawn().await;
    let document = app
        .call(Method::GET, "/openapi.json", None, None)
        .await
        .body;
    let schemas = &document["components"]["schemas"];
    let listed = |schema: &Value| -> Vec<String> {
        schema["enum"]
            .as_array()
            .expect("an enum list")
            .iter()
            .map(|value| value.as_str().expect("text").to_owned())
            .collect()
    };
    let texts = |all: Vec<&str>| all.into_iter().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        listed(&schemas["Role"]),
        texts(Role::ALL.iter().map(|v| v.as_str()).collect())
    );
    assert_eq!(
        listed(&schemas["LoanStatus"]),
        texts(LoanStatus::ALL.iter().map(|v| v.as_str()).collect())
    );
    assert_eq!(
        listed(&schemas["InstallmentStatus"]),
        texts(InstallmentStatus::ALL.iter().map(|v| v.as_str()).collect())
    );
    assert_eq!(
        listed(&schemas["NotificationKind"]),
        texts(NotificationKind::ALL.iter().map(|v| v.as_str()).collect())
    );
    let action_filter = document["paths"]["/audit-logs"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|parameter| parameter["name"] == "action")
        .expect("an action filter")
        .clone();
    assert_eq!(
        listed(&action_filter["schema"]),
        texts(AuditAction::ALL.iter().map(|v| v.as_str()).collect())
    );
}

#[tokio::test]
async fn the_documented_amount_bounds_follow_the_configuration() {
    let app = TestApp::builder()
        .env("LOAN_MIN_AMOUNT", "250.50")
        .env("LOAN_MAX_AMOUNT", "5000")
        .build()
        .await;
    let response = app.call(Method::GET, "/openapi.json", None, None).await;
    let schemas = &response.body["components"]["schemas"];
    let loan_amount = &schemas["LoanAmountInput"];
    assert_eq!(loan_amount["oneOf"][1]["minimum"], 250.5);
    assert_eq!(loan_amount["oneOf"][1]["maximum"], 5000.0);
    let pattern = regex::Regex::new(
        loan_amount["oneOf"][0]["pattern"]
            .as_str()
            .expect("pattern"),
    )
    .expect("a regular expression");
    for (text, accepted) in [
        ("250.49", false),
        ("250.5", true),
        ("250.50", true),
        ("4999.99", true),
        ("5000", true),
        ("5000.01", false),
    ] {
        assert_eq!(pattern.is_match(text), accepted, "{text}");
    }
    assert_eq!(schemas["PaymentAmountInput"]["oneOf"][1]["maximum"], 5000.0);
    assert_eq!(schemas["PaymentAmountInput"]["oneOf"][1]["minimum"], 0.01);
}

#[tokio::test]
async fn the_docs_page_uses_only_its_own_assets() {
    let app = TestApp::spawn().await;
    let page = app.call(Method::GET, "/docs", None, None).await;
    page.assert_status(200);
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html"))
    );
    assert!(
        !page.text.contains("http://") && !page.text.contains("https://"),
        "no CDN"
    );
    for asset in [
        "/docs/swagger-ui.css",
        "/docs/swagger-ui-bundle.js",
        "/docs/init.js",
    ] {
        assert!(page.text.contains(asset), "{asset} not referenced");
        let served = app.call(Method::GET, asset, None, None).await;
        served.assert_status(200);
        assert!(served.text.len() > 200, "{asset} is empty");
    }
    assert!(
        page.header("content-security-policy")
            .is_some_and(|csp| csp.contains("script-src 'self'"))
    );
    // Swagger UI's default would send the document to an outside validator.
    let init = app.call(Method::GET, "/docs/init.js", None, None).await;
    assert!(init.text.contains("validatorUrl: null"), "{}", init.text);
    assert!(!init.text.contains("http://") && !init.text.contains("https://"));
    // Whatever the vendored bundle's text names, the browser may load
    // nothing from another origin: every source is this one (or inline
    // data).
    let policy = page
        .header("content-security-policy")
        .expect("a policy")
        .to_owned();
    for directive in policy.split(';') {
        for source in directive.split_whitespace().skip(1) {
            assert!(
                ["'self'", "'none'", "data:", "'unsafe-inline'"].contains(&source),
                "{source} in {policy}"
            );
        }
    }
    assert!(policy.contains("connect-src 'self'"), "{policy}");
}

#[tokio::test]
async fn a_nul_character_in_any_text_is_a_validation_error_not_a_crash() {
    let app = TestApp::spawn().await;
    let login = app
        .login(json!({ "email": "a\u{0}@example.com", "password": "whatever" }))
        .await;
    login.assert_invalid_fields(&["email"]);
    let register = app
        .post(
            "/auth/register",
            None,
            json!({ "email": "n@example.com", "username": "nul", "password": "pass\u{0}word" }),
        )
        .await;
    register.assert_invalid_fields(&["password"]);
}

#[tokio::test]
async fn readiness_is_503_with_the_failing_check_when_the_database_is_gone() {
    let app = TestApp::spawn().await;
    app.state
        .db
        .write
        .clone()
        .close()
        .await
        .expect("close the pool");
    let ready = app.call(Method::GET, "/health/ready", None, None).await;
    ready.assert_status(503);
    assert_eq!(ready.body["status"], "unavailable");
    assert_eq!(ready.body["checks"]["database"], "failed");
    let live = app.call(Method::GET, "/health/live", None, None).await;
    live.assert_status(200);
}

#[tokio::test]
async fn every_client_is_rate_limited_per_minute() {
    let app = TestApp::builder()
        .env("RATE_LIMIT_PER_MINUTE", "3")
        .build()
        .await;
    let user = app.register("limited").await; // counted against the IP
    let first = app.get("/users/me", &user.token).await;
    first.assert_status(200);
    assert_eq!(first.header("ratelimit-limit"), Some("3"));
    assert_eq!(first.header("ratelimit-remaining"), Some("2"));
    app.get("/users/me", &user.token).await.assert_status(200);
    app.get("/users/me", &user.token).await.assert_status(200);
    let limited = app.get("/users/me", &user.token).await;
    limited.assert_problem(429);
    assert!(limited.header("retry-after").is_some());
    assert_eq!(limited.header("ratelimit-remaining"), Some("0"));
    // Probes are never limited.
    app.call(Method::GET, "/health/live", None, None)
        .await
        .assert_status(200);
}

#[tokio::test]
async fn the_role_is_checked_before_the_body() {
    let app = TestApp::spawn().await;
    let user = app.register("curious").await;
    let loan = app.apply(&user, "500.00", 5).await;
    let response = app
        .send(
            Request::builder()
                .method(Method::PATCH)
                .uri(format!("/loans/{loan}/approve"))
                .header("authorization", format!("Bearer {}", user.token))
                .header("content-type", "application/json")
                .body(Body::from("{not json"))
                .expect("request"),
        )
        .await;
    response.assert_problem(403);
}

#[tokio::test]
async fn cors_answers_allowed_origins_only_with_the_security_headers() {
    let app = TestApp::builder()
        .env("CORS_ORIGINS", "https://app.example")
        .build()
        .await;
    let preflight = |origin: &'static str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/auth/login")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .body(Body::empty())
            .expect("request")
    };
    let allowed = app.send(preflight("https://app.example")).await;
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(allowed.header("x-frame-options"), Some("DENY"));
    let other = app.send(preflight("https://evil.example")).await;
    assert_eq!(other.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn empty_typed_query_parameters_are_invalid_not_ignored() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    for (path, field) in [
        ("/audit-logs?to=", "to"),
        ("/audit-logs?action=", "action"),
        ("/loans?status=", "status"),
        ("/users?role=", "role"),
        ("/payments/overdue?asOf=", "asOf"),
    ] {
        app.get(path, &admin.token)
            .await
            .assert_invalid_fields(&[field]);
    }
    // An empty cursor is the first page.
    app.get("/loans?cursor=", &admin.token)
        .await
        .assert_status(200);
}

#[tokio::test]
async fn a_repeated_query_parameter_is_refused_naming_it() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    for (path, fields) in [
        ("/loans?bucket=bogus&bucket=CURRENT", vec!["bucket"]),
        ("/loans?status=PAID&status=OVERDUE", vec!["status"]),
        ("/loans?status=PAID&status=PAID", vec!["status"]),
        ("/loans?limit=5&limit=6&status=OVERDUE", vec!["limit"]),
        ("/users?role=USER&role=ADMIN", vec!["role"]),
        (
            "/audit-logs?action=LOAN_APPLIED&action=LOAN_APPROVED&from=x",
            vec!["action", "from"],
        ),
        (
            "/payments/overdue?asOf=2026-01-10&asOf=2026-01-11",
            vec!["asOf"],
        ),
    ] {
        app.get(path, &admin.token)
            .await
            .assert_invalid_fields(&fields);
    }
    app.get(
        &format!("/loans/{loan_id}/payoff?asOf=2026-02-01&asOf=2026-03-01"),
        &borrower.token,
    )
    .await
    .assert_invalid_fields(&["asOf"]);
    app.get(
        &format!(
            "/notifications/user/{}?unread=true&unread=false",
            borrower.id
        ),
        &borrower.token,
    )
    .await
    .assert_invalid_fields(&["unread"]);
    // Parameters no list knows are ignored, repeated or not.
    app.get("/loans?_=1&_=2&status=APPROVED", &admin.token)
        .await
        .assert_status(200);
}

#[tokio::test]
async fn lenient_where_json_allows_it() {
    let app = TestApp::spawn().await;
    let (borrower, admin, _) = app.golden_loan().await;
    // `12.0` is a whole number in JSON; `null` is an absent optional body.
    let loan = app
        .post(
            "/loans/apply",
            Some(&borrower.token),
            json!({ "amount": "500", "termMonths": 12.0 }),
        )
        .await;
    loan.assert_status(201);
    let loan_id = loan.body["id"].as_str().expect("id").to_owned();
    let approved = app
        .send(
            Request::builder()
                .method(Method::PATCH)
                .uri(format!("/loans/{loan_id}/approve"))
                .header("authorization", format!("Bearer {}", admin.token))
                .header("content-type", "application/json")
                .body(Body::from("null"))
                .expect("request"),
        )
        .await;
    // The body is optional, but one that is there is an object.
    approved.assert_problem(400);
    app.patch(&format!("/loans/{loan_id}/approve"), &admin.token, None)
        .await
        .assert_status(200);
    app.post(
        "/loans/apply",
        Some(&borrower.token),
        json!({ "amount": "500", "termMonths": 12.5 }),
    )
    .await
    .assert_invalid_fields(&["termMonths"]);
    // Text may span lines; only NUL is refused.
    let other = app.apply(&borrower, "700.00", 7).await;
    let rejected = app
        .patch(
            &format!("/loans/{other}/reject"),
            &admin.token,
            Some(json!({ "reason": "Income:\n\tnot verified" })),
        )
        .await;
    rejected.assert_status(200);
    assert_eq!(rejected.body["rejectionReason"], "Income:\n\tnot verified");
}
