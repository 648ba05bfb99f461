//! The test harness: a fresh database per test, the real router driven
//! in-process, and scenario helpers.
//!
//! SQLite in a temporary directory by default; with `TEST_DATABASE_URL`
//! (a PostgreSQL server URL) each test gets its own freshly created and
//! migrated database, dropped again at the end.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use chrono::{DateTime, TimeZone, Utc};
use http_body_util::BodyExt;
use loan_tracker::app::AppState;
use loan_tracker::clock::ManualClock;
use loan_tracker::config::Config;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery";

/// The moment every test starts at, unless it moves the clock.
pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 10, 0, 0)
        .single()
        .expect("valid start time")
}

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub clock: ManualClock,
    /// The configuration the app was built from, for second instances.
    pub vars: HashMap<String, String>,
    _database: TestDatabase,
    _redis_keys: RedisNamespace,
}

/// The Redis keys of one test (its prefix and its email queue), deleted
/// when the test ends, as its database is.
pub struct RedisNamespace {
    url: Option<String>,
    patterns: Vec<String>,
    /// The email queue's name in Redis, which apalis also lists in a
    /// registry of its own.
    queue: Option<String>,
}

/// Where apalis registers every queue's workers.
const APALIS_QUEUE_REGISTRY: &str = "core:apalis:queues:list";

impl RedisNamespace {
    pub fn new(url: Option<String>, patterns: Vec<String>) -> RedisNamespace {
        RedisNamespace {
            url,
            patterns,
            queue: None,
        }
    }

    pub fn with_queue(mut self, queue: String) -> RedisNamespace {
        self.queue = Some(queue);
        self
    }
}

impl Drop for RedisNamespace {
    fn drop(&mut self) {
        let Some(url) = &self.url else {
            return;
        };
        // A test's own Redis server may be gone already: then so are its
        // keys, and nothing is waited for.
        let Ok(client) = redis::Client::open(url.as_str()) else {
            return;
        };
        let Ok(mut connection) =
            client.get_connection_with_timeout(std::time::Duration::from_secs(1))
        else {
            return;
        };
        for pattern in &self.patterns {
            let keys: Vec<String> = match redis::Commands::scan_match(&mut connection, pattern) {
                Ok(keys) => keys.filter_map(Result::ok).collect(),
                Err(_) => continue,
            };
            for batch in keys.chunks(500) {
                let _: redis::RedisResult<()> = redis::Commands::del(&mut connection, batch);
            }
        }
        if let Some(queue) = &self.queue {
            let _: redis::RedisResult<()> = redis::Commands::zrem(
                &mut connection,
                APALIS_QUEUE_REGISTRY,
                format!("{queue}:workers"),
            );
        }
    }
}

enum TestDatabase {
    Sqlite(
        #[expect(
            dead_code,
            reason = "held only so the directory is deleted when the test ends"
        )]
        tempfile::TempDir,
    ),
    Postgres {
        server_url: String,
        name: String,
        replica: Option<String>,
    },
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let TestDatabase::Postgres {
            server_url,
            name,
            replica,
        } = self
        {
            let server_url = server_url.clone();
            let names: Vec<String> = std::iter::once(name.clone())
                .chain(replica.clone())
                .collect();
            // Drop runs outside async; use a throwaway runtime on its own
            // thread to remove the database.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(runtime) = runtime {
                    runtime.block_on(async {
                        if let Ok(server) = sea_orm::Database::connect(&server_url).await {
                            for name in &names {
                                let _ = server
                                    .execute_unprepared(&format!(
                                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                                    ))
                                    .await;
                            }
                            let _ = server.close().await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

pub struct TestAppBuilder {
    vars: HashMap<String, String>,
    replica: bool,
    /// Migrations to apply and SQL to run before the app starts (and
    /// applies the rest): a database written by an earlier version.
    earlier_version: Option<(u32, Vec<String>)>,
}

impl TestAppBuilder {
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.to_owned(), value.to_owned());
        self
    }

    /// On PostgreSQL: a second, separately migrated database as the read
    /// replica — one that never catches up, so every read it serves shows.
    pub fn with_lagging_replica(mut self) -> Self {
        self.replica = true;
        self
    }

    /// Starts from a database an earlier version left: only the first
    /// `migrations`, then `statements` (its rows); the app then upgrades it.
    pub fn upgrading_from(mut self, migrations: u32, statements: Vec<String>) -> Self {
        self.earlier_version = Some((migrations, statements));
        self
    }

    pub async fn build(mut self) -> TestApp {
        let (database, url, data_dir) = match std::env::var("TEST_DATABASE_URL") {
            Ok(server_url) if !server_url.is_empty() => {
                let name = format!("lt_test_{}", Uuid::new_v4().simple());
                let server = sea_orm::Database::connect(&server_url)
                    .await
                    .expect("connect to TEST_DATABASE_URL");
                server
                    .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .expect("create test database");
                server.close().await.expect("close admin connection");
                let url = replace_database_name(&server_url, &name);
                let data_dir = std::env::temp_dir().join(&name);
                let replica = if self.replica {
                    let replica_name = format!("{name}_replica");
                    let server = sea_orm::Database::connect(&server_url)
                        .await
                        .expect("connect");
                    server
                        .execute_unprepared(&format!("CREATE DATABASE \"{replica_name}\""))
                        .await
                        .expect("create replica database");
                    server.close().await.expect("close");
                    let replica_url = replace_database_name(&server_url, &replica_name);
                    let replica = sea_orm::Database::connect(&replica_url)
                        .await
                        .expect("connect replica");
                    <loan_tracker::db::migrations::Migrator as sea_orm_migration::MigratorTrait>::up(&replica, None)
                        .await
                        .expect("migrate replica");
                    replica.close().await.expect("close replica");
                    self.vars
                        .insert("DATABASE_READ_URL".to_owned(), replica_url);
                    Some(replica_name)
                } else {
                    None
                };
                (
                    TestDatabase::Postgres {
                        server_url,
                        name,
                        replica,
                    },
                    url,
                    data_dir,
                )
            }
            _ => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
                let data_dir = dir.path().to_path_buf();
                (TestDatabase::Sqlite(dir), url, data_dir)
            }
        };
        let defaults = [
            ("DATABASE_URL", url.as_str()),
            ("DATA_DIR", &data_dir.display().to_string()),
            ("JWT_SECRET", "test-secret-0123456789abcdef0123456789"),
            ("LOG_FORMAT", "json"),
            ("AUTH_RATE_LIMIT_PER_MINUTE", "10000"),
            ("RATE_LIMIT_PER_MINUTE", "100000"),
            ("DATABASE_MAX_CONNECTIONS", "8"),
            // Tokens outlive the months a test's clock may move forward;
            // the expiry test sets its own lifetime.
            ("ACCESS_TOKEN_TTL_SECS", "315360000"),
        ];
        for (name, value) in defaults {
            self.vars
                .entry(name.to_owned())
                .or_insert_with(|| value.to_owned());
        }
        if let Ok(redis_url) = std::env::var("TEST_REDIS_URL")
            && !redis_url.is_empty()
        {
            self.vars.entry("REDIS_URL".to_owned()).or_insert(redis_url);
        }
        // Each test its own queue and keys, so tests sharing one Redis
        // never meet.
        let namespace = Uuid::new_v4().simple().to_string();
        let queue = self
            .vars
            .entry("EMAIL_QUEUE".to_owned())
            .or_insert_with(|| format!("test-emails-{namespace}"))
            .clone();
        let prefix = self
            .vars
            .entry("REDIS_KEY_PREFIX".to_owned())
            .or_insert_with(|| format!("test-{namespace}"))
            .clone();
        // The queue lives under the prefix too.
        let redis_keys = RedisNamespace::new(
            self.vars.get("REDIS_URL").cloned(),
            vec![format!("{prefix}:*")],
        )
        .with_queue(format!("{prefix}:{queue}"));
        if let Some((migrations, statements)) = &self.earlier_version {
            let earlier = sea_orm::Database::connect(&url)
                .await
                .expect("connect to the database");
            <loan_tracker::db::migrations::Migrator as sea_orm_migration::MigratorTrait>::up(
                &earlier,
                Some(*migrations),
            )
            .await
            .expect("apply the earlier migrations");
            for statement in statements {
                earlier
                    .execute_unprepared(statement)
                    .await
                    .unwrap_or_else(|error| panic!("{statement}: {error}"));
            }
            earlier.close().await.expect("close");
        }
        let config = Config::from_map(&self.vars).expect("test configuration is valid");
        let clock = ManualClock::new(start_time());
        let state = loan_tracker::startup::build_state(config, std::sync::Arc::new(clock.clone()))
            .await
            .expect("application state");
        let router = loan_tracker::router::router(state.clone());
        TestApp {
            router,
            state,
            clock,
            vars: self.vars,
            _database: database,
            _redis_keys: redis_keys,
        }
    }
}

fn replace_database_name(server_url: &str, name: &str) -> String {
    let (without_query, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server_url, None),
    };
    let authority_end = without_query
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| without_query[start..].find('/').map(|i| start + i));
    let base = match authority_end {
        Some(slash) => &without_query[..slash],
        None => without_query,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// A response, with the body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl TestResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    pub fn assert_status(&self, expected: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            expected,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    /// Asserts a problem+json error of `status` and returns its body.
    #[track_caller]
    pub fn assert_problem(&self, status: u16) -> &Value {
        self.assert_status(status);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        assert_eq!(self.body["status"], json!(status));
        assert!(
            self.body["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("https://")),
            "{}",
            self.text
        );
        assert!(
            self.body["title"].is_string() && self.body["detail"].is_string(),
            "{}",
            self.text
        );
        &self.body
    }

    /// Asserts a 422 whose `errors` name exactly `fields` (in any order).
    #[track_caller]
    pub fn assert_invalid_fields(&self, fields: &[&str]) {
        self.assert_problem(422);
        let mut named: Vec<&str> = self.body["errors"]
            .as_array()
            .expect("errors array")
            .iter()
            .map(|e| e["field"].as_str().expect("field name"))
            .collect();
        named.sort_unstable();
        let mut expected = fields.to_vec();
        expected.sort_unstable();
        assert_eq!(named, expected, "{}", self.text);
    }
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub token: String,
    pub refresh_token: String,
}

impl TestApp {
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            vars: HashMap::new(),
            replica: false,
            earlier_version: None,
        }
    }

    pub async fn spawn() -> TestApp {
        Self::builder().build().await
    }

    /// Sends a request as if from 127.0.0.1.
    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        send_to(&self.router, request).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => builder
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => builder.body(Body::empty()),
        };
        self.send(request.expect("valid request")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> TestResponse {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// `GET /loans/{id}` as `token`'s holder, which must answer 200: the
    /// loan's body.
    pub async fn loan_body(&self, token: &str, loan_id: &impl std::fmt::Display) -> Value {
        let response = self.get(&format!("/loans/{loan_id}"), token).await;
        response.assert_status(200);
        response.body
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> TestResponse {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Option<Value>) -> TestResponse {
        self.call(Method::PATCH, path, Some(token), body).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> TestResponse {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    /// Registers `username` (email `<username>@example.com`) and returns the
    /// signed-in user.
    pub async fn register(&self, username: &str) -> TestUser {
        let email = format!("{username}@example.com");
        let response = self
            .post(
                "/auth/register",
                None,
                json!({ "email": email, "username": username, "password": PASSWORD }),
            )
            .await;
        response.assert_status(201);
        test_user(&response.body)
    }

    pub async fn login(&self, identifier: Value) -> TestResponse {
        self.post("/auth/login", None, identifier).await
    }

    /// Creates a user with `role` directly and signs them in.
    pub async fn user_with_role(&self, username: &str, role: &str) -> TestUser {
        let user = self.register(username).await;
        if role != "USER" {
            self.state
                .db
                .write
                .execute_unprepared(&format!(
                    "UPDATE users SET role = '{role}' WHERE username = '{username}'"
                ))
                .await
                .expect("set role");
        }
        user
    }

    pub async fn admin(&self) -> TestUser {
        self.user_with_role("admin", "ADMIN").await
    }

    pub async fn manager(&self) -> TestUser {
        self.user_with_role("manager", "MANAGER").await
    }

    /// Every audit action recorded so far, oldest first.
    pub async fn audit_actions(&self) -> Vec<String> {
        use sea_orm::{EntityTrait, QueryOrder};
        loan_tracker::db::entities::audit_log::Entity::find()
            .order_by_asc(loan_tracker::db::entities::audit_log::Column::Id)
            .all(&self.state.db.read)
            .await
            .expect("audit rows")
            .into_iter()
            .map(|row| row.action)
            .collect()
    }

    /// Audit rows of one action, oldest first.
    pub async fn audit_rows(
        &self,
        action: &str,
    ) -> Vec<loan_tracker::db::entities::audit_log::Model> {
        use loan_tracker::db::entities::audit_log;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        audit_log::Entity::find()
            .filter(audit_log::Column::Action.eq(action))
            .order_by_asc(audit_log::Column::Id)
            .all(&self.state.db.read)
            .await
            .expect("audit rows")
    }
}

pub fn test_user(body: &Value) -> TestUser {
    TestUser {
        id: body["user"]["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("user id"),
        token: body["accessToken"]
            .as_str()
            .expect("access token")
            .to_owned(),
        refresh_token: body["refreshToken"]
            .as_str()
            .expect("refresh token")
            .to_owned(),
    }
}

impl TestApp {
    /// Applies for a loan as `user`; returns the loan's id.
    pub async fn apply(&self, user: &TestUser, amount: &str, term_months: u32) -> Uuid {
        let response = self
            .post(
                "/loans/apply",
                Some(&user.token),
                json!({ "amount": amount, "termMonths": term_months }),
            )
            .await;
        response.assert_status(201);
        response.body["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("loan id")
    }

    /// Approves `loan_id` as `admin` with `terms` (or none); returns the loan.
    pub async fn approve(&self, admin: &TestUser, loan_id: Uuid, terms: Option<Value>) -> Value {
        let response = self
            .patch(&format!("/loans/{loan_id}/approve"), &admin.token, terms)
            .await;
        response.assert_status(200);
        response.body
    }

    /// Notification kinds of a user, oldest first.
    pub async fn notification_kinds(&self, user_id: Uuid) -> Vec<String> {
        use loan_tracker::db::entities::notification;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        notification::Entity::find()
            .filter(notification::Column::UserId.eq(user_id))
            .order_by_asc(notification::Column::Id)
            .all(&self.state.db.read)
            .await
            .expect("notifications")
            .into_iter()
            .map(|n| {
                serde_json::to_value(n.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            })
            .collect()
    }
}

impl TestApp {
    /// `POST /payments/{loan_id}` as `user`, with an optional idempotency key.
    pub async fn pay(
        &self,
        user: &TestUser,
        loan_id: Uuid,
        amount: Value,
        key: Option<&str>,
    ) -> TestResponse {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(format!("/payments/{loan_id}"))
            .header("authorization", format!("Bearer {}", user.token))
            .header("content-type", "application/json");
        if let Some(key) = key {
            builder = builder.header("idempotency-key", key);
        }
        self.send(
            builder
                .body(Body::from(json!({ "amount": amount }).to_string()))
                .expect("request"),
        )
        .await
    }

    /// The differences between what is stored of a loan and a fresh
    /// replay of its history (empty when the books agree).
    pub async fn verify_books(
        &self,
        loan_id: Uuid,
    ) -> Result<Vec<String>, loan_tracker::servicing::ServicingError> {
        loan_tracker::servicing::verify::verify_books(
            &self.state.db.write,
            &self.state.servicing(),
            loan_id,
        )
        .await
    }

    /// The differences between a loan's journal and the loan as stored
    /// (empty when they agree).
    pub async fn verify_journal(
        &self,
        loan_id: Uuid,
    ) -> Result<Vec<String>, loan_tracker::servicing::ServicingError> {
        loan_tracker::servicing::verify::verify_journal(&self.state.db.write, loan_id).await
    }

    /// Runs SQL directly, for setting up states other modules produce.
    pub async fn sql(&self, statement: &str) {
        self.state
            .db
            .write
            .execute_unprepared(statement)
            .await
            .unwrap_or_else(|error| panic!("{statement}: {error}"));
    }

    /// Counts rows of a table.
    pub async fn count(&self, table: &str) -> i64 {
        use sea_orm::Statement;
        let backend = self.state.db.backend();
        let row = self
            .state
            .db
            .read
            .query_one_raw(Statement::from_string(
                backend,
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .expect("count")
            .expect("a row");
        row.try_get::<i64>("", "n").expect("count column")
    }
}

impl TestApp {
    /// Another instance of the service on the same database (and Redis).
    pub async fn second_instance(&self) -> AppState {
        let config = Config::from_map(&self.vars).expect("test configuration is valid");
        loan_tracker::startup::build_state(config, std::sync::Arc::new(self.clock.clone()))
            .await
            .expect("second instance")
    }

    /// `POST /admin/jobs/{name}/run` as `admin` for `as_of`; returns the report.
    /// Runs job `name` as of `as_of`; a day after today is reached by
    /// moving the clock there first, as a job cannot run ahead of it.
    pub async fn run_job(&self, admin: &TestUser, name: &str, as_of: &str) -> Value {
        let day = loan_tracker::calendar::parse_date(as_of).expect("a date");
        if day > self.state.today() {
            let moment = day.and_hms_opt(10, 0, 0).expect("a time").and_utc();
            self.clock.set(moment);
        }
        let response = self
            .post(
                &format!("/admin/jobs/{name}/run"),
                Some(&admin.token),
                json!({ "asOf": as_of }),
            )
            .await;
        response.assert_status(200);
        response.body
    }

    /// A user's notifications as `(kind, title)`, oldest first.
    pub async fn notifications(
        &self,
        user_id: Uuid,
    ) -> Vec<loan_tracker::db::entities::notification::Model> {
        use loan_tracker::db::entities::notification;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        notification::Entity::find()
            .filter(notification::Column::UserId.eq(user_id))
            .order_by_asc(notification::Column::Id)
            .all(&self.state.db.read)
            .await
            .expect("notifications")
    }
}

impl TestApp {
    /// A borrower with the golden loan — 10 000.00 at 12 % over 12 months,
    /// first due 2026-02-15, approved — and the admin who approved it.
    pub async fn golden_loan(&self) -> (TestUser, TestUser, Uuid) {
        let borrower = self.register("borrower").await;
        let admin = self.admin().await;
        let loan_id = self.apply(&borrower, "10000.00", 12).await;
        self.approve(
            &admin,
            loan_id,
            Some(json!({ "annualInterestRate": "12", "firstDueDate": "2026-02-15" })),
        )
        .await;
        (borrower, admin, loan_id)
    }
}

/// Sends a request as if from 127.0.0.1 to any router.
pub async fn send_to(router: &Router, mut request: Request<Body>) -> TestResponse {
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("router is infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    TestResponse {
        status,
        headers,
        body,
        text,
    }
}

/// A served instance of `app` on a free loopback port, stopped by
/// `stop`; `finished` completes when the server loop has returned.
/// A served instance of an app on a free loopback port, stopped by
/// `stop`; `finished` completes when the server loop has returned.
pub struct Served {
    pub address: SocketAddr,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub finished: tokio::task::JoinHandle<()>,
}

pub async fn serve_app(app: &TestApp) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let router = loan_tracker::router::router(app.state.clone());
    let limits = loan_tracker::server::ConnectionLimits::from_config(&app.state.config);
    let finished = tokio::spawn(async move {
        loan_tracker::server::serve(
            listener,
            router,
            limits,
            async {
                let _ = stopped.await;
            },
            std::time::Duration::from_secs(30),
        )
        .await;
    });
    Served {
        address,
        stop: Some(stop),
        finished,
    }
}

/// Polls `condition` every 50 ms until it holds or `limit` passes; for
/// waiting on another process or a background task, never on time itself.
pub async fn eventually(
    limit: std::time::Duration,
    mut condition: impl AsyncFnMut() -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A Redis server of the test's own, on a free loopback port.
pub struct RedisServer {
    port: u16,
    child: tokio::process::Child,
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("a free port");
        Self::start_on(port).await
    }

    async fn start_on(port: u16) -> RedisServer {
        let child = tokio::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server runs");
        let up = eventually(std::time::Duration::from_secs(10), async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        assert!(up, "redis-server did not start on {port}");
        RedisServer { port, child }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server; returns the port to restart on.
    pub async fn stop(mut self) -> StoppedRedis {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
        StoppedRedis { port: self.port }
    }
}

pub struct StoppedRedis {
    port: u16,
}

impl StoppedRedis {
    pub async fn restart(self) -> RedisServer {
        RedisServer::start_on(self.port).await
    }
}

/// Whether the tests run against a Redis server (`TEST_REDIS_URL`).
pub fn redis_configured() -> bool {
    std::env::var("TEST_REDIS_URL").is_ok_and(|url| !url.is_empty())
}

/// Whether the tests run against PostgreSQL (`TEST_DATABASE_URL`).
pub fn postgres_configured() -> bool {
    std::env::var("TEST_DATABASE_URL").is_ok_and(|url| !url.is_empty())
}

/// Something a test needs from the machine beyond the embedded default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// `TEST_DATABASE_URL` (and PostgreSQL's server binaries here).
    Postgres,
    /// `TEST_REDIS_URL` (and `redis-server` here).
    Redis,
    /// The `nginx` binary.
    Nginx,
    /// Chromium and `chromedriver` (Debian's `chromium`, `chromium-driver`).
    Browser,
}

impl Needs {
    fn name(self) -> &'static str {
        match self {
            Needs::Postgres => "postgres",
            Needs::Redis => "redis",
            Needs::Nginx => "nginx",
            Needs::Browser => "browser",
        }
    }
}

/// Whether a test may go on, given whether what it `needs` is `available`.
///
/// Locally a missing server skips the test, saying so on stderr. With `CI`
/// set it fails the test instead, so CI can never pass without running
/// it — unless the run names that need in `TEST_SKIP_NEEDING` (a
/// comma-separated list, e.g. `postgres,redis` for `.ci/run`'s SQLite pass,
/// whose PostgreSQL pass runs those tests).
pub fn may_run(test: &str, needs: Needs, available: bool) -> bool {
    if available {
        return true;
    }
    let excused = std::env::var("TEST_SKIP_NEEDING")
        .is_ok_and(|list| list.split(',').any(|item| item.trim() == needs.name()));
    assert!(
        std::env::var_os("CI").is_none() || excused,
        "{test} needs {} and CI must run it: provide it, or list `{}` in TEST_SKIP_NEEDING for a pass that runs it elsewhere",
        needs.name(),
        needs.name()
    );
    // Straight to stderr, past the test harness's capture, so that a
    // skipped test is seen.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: needs {}", needs.name());
    false
}
