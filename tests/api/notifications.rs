//! `/notifications`, and their delivery by email through the queue to a
//! real SMTP server started by the test.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use loan_tracker::db::entities::notification;
use loan_tracker::worker::Background;
use mailin_embedded::{Handler, Response, response};
use sea_orm::EntityTrait;
use serde_json::json;
use uuid::Uuid;

use crate::support::{TestApp, TestUser, eventually};

async fn approved_loan(app: &TestApp) -> (TestUser, TestUser, Uuid) {
    let borrower = app.register("borrower").await;
    let admin = app.admin().await;
    let loan_id = app.apply(&borrower, "1200.00", 12).await;
    app.approve(
        &admin,
        loan_id,
        Some(json!({ "annualInterestRate": "0", "firstDueDate": "2026-02-15" })),
    )
    .await;
    (borrower, admin, loan_id)
}

#[tokio::test]
async fn users_list_their_notifications_and_mark_them_read() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = approved_loan(&app).await;
    let stranger = app.register("stranger").await;
    app.pay(&borrower, loan_id, json!("100.00"), None)
        .await
        .assert_status(201);

    let list = app
        .get(
            &format!("/notifications/user/{}", borrower.id),
            &borrower.token,
        )
        .await;
    list.assert_status(200);
    let items = list.body["items"].as_array().expect("items");
    let kinds: Vec<&str> = items
        .iter()
        .map(|n| n["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(kinds, ["PAYMENT_RECEIVED", "LOAN_APPROVED"], "newest first");
    let approved = &items[1];
    assert_eq!(approved["userId"], json!(borrower.id));
    assert_eq!(approved["loanId"], json!(loan_id));
    assert_eq!(approved["title"], "Your loan was approved");
    assert_eq!(approved["readAt"], json!(null));
    assert_eq!(approved["createdAt"], "2026-01-15T10:00:00Z");
    let id = approved["id"].as_str().expect("id").to_owned();

    app.get(
        &format!("/notifications/user/{}", borrower.id),
        &stranger.token,
    )
    .await
    .assert_problem(403);
    app.get(
        &format!("/notifications/user/{}", borrower.id),
        &admin.token,
    )
    .await
    .assert_status(200);
    app.patch(&format!("/notifications/{id}/read"), &stranger.token, None)
        .await
        .assert_problem(404);
    app.patch(&format!("/notifications/{id}/read"), &admin.token, None)
        .await
        .assert_problem(404);
    app.patch(
        &format!("/notifications/{}/read", Uuid::now_v7()),
        &borrower.token,
        None,
    )
    .await
    .assert_problem(404);

    let read = app
        .patch(&format!("/notifications/{id}/read"), &borrower.token, None)
        .await;
    read.assert_status(200);
    assert_eq!(read.body["readAt"], "2026-01-15T10:00:00Z");
    app.clock.advance(chrono::Duration::minutes(5));
    let again = app
        .patch(&format!("/notifications/{id}/read"), &borrower.token, None)
        .await;
    again.assert_status(200);
    assert_eq!(
        again.body["readAt"], "2026-01-15T10:00:00Z",
        "idempotent: the first read time stays"
    );

    let unread = app
        .get(
            &format!("/notifications/user/{}?unread=true", borrower.id),
            &borrower.token,
        )
        .await;
    let kinds: Vec<&str> = unread.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| n["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(kinds, ["PAYMENT_RECEIVED"]);
    app.get(
        &format!("/notifications/user/{}?unread=maybe", borrower.id),
        &borrower.token,
    )
    .await
    .assert_invalid_fields(&["unread"]);
    let page = app
        .get(
            &format!("/notifications/user/{}?limit=1", borrower.id),
            &borrower.token,
        )
        .await;
    assert_eq!(page.body["items"].as_array().map(Vec::len), Some(1));
    let cursor = page.body["nextCursor"].as_str().expect("a next page");
    let next = app
        .get(
            &format!(
                "/notifications/user/{}?limit=1&cursor={cursor}",
                borrower.id
            ),
            &borrower.token,
        )
        .await;
    assert_eq!(next.body["items"][0]["kind"], "LOAN_APPROVED");
    assert_eq!(next.body["nextCursor"], json!(null));
}

/// Recipients and raw message of one received email.
type Received = (Vec<String>, String);

/// An SMTP server that keeps what it receives. The server clones the
/// handler for each connection: the message in progress is that clone's
/// own, what was received is shared.
#[derive(Clone, Default)]
struct Sink {
    received: Arc<Mutex<Vec<Received>>>,
    current: (Vec<String>, Vec<u8>),
}

impl Handler for Sink {
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.current = (to.to_vec(), Vec::new());
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.1.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let (to, data) = std::mem::take(&mut self.current);
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((to, String::from_utf8_lossy(&data).into_owned()));
        response::OK
    }
}

impl Sink {
    /// Starts listening on `port` in a background thread.
    fn start(&self, port: u16) {
        let mut server = mailin_embedded::Server::new(self.clone());
        server
            .with_name("sink.test")
            .with_addr(("127.0.0.1", port))
            .expect("sink address");
        std::thread::spawn(move || {
            if let Err(error) = server.serve() {
                eprintln!("SMTP sink stopped: {error}");
            }
        });
    }

    fn messages(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

#[tokio::test]
async fn emails_reach_the_smtp_server_and_are_retried_until_it_is_up() {
    let port = free_port();
    let app = TestApp::builder()
        .env("SMTP_URL", &format!("smtp://127.0.0.1:{port}"))
        .env("MAIL_FROM", "Loan Tracker <loans@example.com>")
        .env("EMAIL_RETRY_BACKOFF_MS", "100")
        .env("SCHEDULER_ENABLED", "false")
        .build()
        .await;
    let (borrower, _, _) = approved_loan(&app).await;
    let background = Background::start(app.state.clone())
        .await
        .expect("background starts");

    // The server is down: the first attempt fails and the job waits to retry.
    let failed_once = eventually(Duration::from_secs(20), async || {
        background
            .delivery
            .failed_attempts
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    })
    .await;
    assert!(
        failed_once,
        "the first delivery attempt should fail while the server is down"
    );
    let sink = Sink::default();
    sink.start(port);
    let delivered = eventually(Duration::from_secs(30), async || {
        !sink.messages().is_empty()
    })
    .await;
    assert!(delivered, "the email arrives once the server is up");

    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    let (recipients, data) = &messages[0];
    assert_eq!(recipients, &["borrower@example.com".to_owned()]);
    assert!(data.contains("Subject: Your loan was approved"), "{data}");
    assert!(
        data.contains("From: \"Loan Tracker\" <loans@example.com>")
            || data.contains("From: Loan Tracker <loans@example.com>"),
        "{data}"
    );
    assert!(data.contains("Hello borrower,"), "{data}");
    assert!(
        data.contains("Your loan of 1200.00 USD was approved"),
        "{data}"
    );
    assert!(data.contains("Content-Type: text/plain"), "{data}");

    // The worker records the send right after the server accepted it.
    let recorded = eventually(Duration::from_secs(10), async || {
        let stored = notification::Entity::find()
            .all(&app.state.db.read)
            .await
            .expect("notifications");
        stored
            .iter()
            .all(|n| n.emailed_at.is_some() && n.email_enqueued_at.is_some())
    })
    .await;
    assert!(recorded, "emailed_at is set once the email is sent");
    let stored = notification::Entity::find()
        .all(&app.state.db.read)
        .await
        .expect("notifications");
    assert_eq!(stored[0].user_id, borrower.id);
    background.stop(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn an_email_that_keeps_failing_ends_dead() {
    let port = free_port();
    let app = TestApp::builder()
        .env("SMTP_URL", &format!("smtp://127.0.0.1:{port}"))
        .env("EMAIL_MAX_ATTEMPTS", "2")
        .env("EMAIL_RETRY_BACKOFF_MS", "50")
        .env("SCHEDULER_ENABLED", "false")
        .build()
        .await;
    approved_loan(&app).await;
    let background = Background::start(app.state.clone())
        .await
        .expect("background starts");
    let dead = eventually(Duration::from_secs(20), async || {
        background
            .delivery
            .dead
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1
    })
    .await;
    assert!(dead, "after its attempts the job is dead");
    assert_eq!(
        background
            .delivery
            .failed_attempts
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    let stored = notification::Entity::find()
        .all(&app.state.db.read)
        .await
        .expect("notifications");
    assert!(
        stored.iter().all(|n| n.emailed_at.is_none()),
        "nothing was sent"
    );
    background.stop(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn without_smtp_emails_are_only_logged_and_marked_sent() {
    let app = TestApp::builder()
        .env("SCHEDULER_ENABLED", "false")
        .build()
        .await;
    approved_loan(&app).await;
    let background = Background::start(app.state.clone())
        .await
        .expect("background starts");
    let sent = eventually(Duration::from_secs(20), async || {
        background
            .delivery
            .delivered
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1
    })
    .await;
    assert!(sent);
    let stored = notification::Entity::find()
        .all(&app.state.db.read)
        .await
        .expect("notifications");
    assert!(stored.iter().all(|n| n.emailed_at.is_some()));
    background.stop(Duration::from_secs(10)).await;
}

/// Two deployments sharing one Redis, with the same queue name but their
/// own key prefixes and databases: each delivers exactly its own emails,
/// and neither worker touches the other's jobs. Alpha's jobs wait on the
/// queue while only beta's worker runs; then alpha's worker delivers them.
#[tokio::test]
async fn deployments_sharing_redis_each_deliver_only_their_own_emails() {
    use loan_tracker::notifications::delivery::{EmailJob, EmailQueue};
    if !crate::support::may_run(
        "deployments_sharing_redis_each_deliver_only_their_own_emails",
        crate::support::Needs::Redis,
        crate::support::redis_configured(),
    ) {
        return;
    }
    let mut deployments = Vec::new();
    for name in ["alpha", "beta"] {
        let port = free_port();
        let sink = Sink::default();
        sink.start(port);
        let app = TestApp::builder()
            .env("SMTP_URL", &format!("smtp://127.0.0.1:{port}"))
            .env("EMAIL_QUEUE", "emails")
            .env(
                "REDIS_KEY_PREFIX",
                &format!("{name}-{}", Uuid::new_v4().simple()),
            )
            .env("EMAIL_RETRY_BACKOFF_MS", "100")
            .env("SCHEDULER_ENABLED", "false")
            .build()
            .await;
        let borrower = app.register(name).await;
        let admin = app.admin().await;
        for _ in 0..3 {
            let loan_id = app.apply(&borrower, "1200.00", 12).await;
            app.approve(&admin, loan_id, None).await;
        }
        deployments.push((app, sink, name));
    }
    let [(alpha, alpha_sink, _), (beta, beta_sink, _)] = &deployments[..] else {
        unreachable!("two deployments");
    };
    // Alpha's jobs are on its queue before anyone consumes.
    let alpha_queue = EmailQueue::connect(&alpha.state.config)
        .await
        .expect("alpha's queue");
    for row in notification::Entity::find()
        .all(&alpha.state.db.read)
        .await
        .expect("notifications")
    {
        alpha_queue
            .push(
                EmailJob {
                    notification_id: row.id,
                },
                3,
            )
            .await
            .expect("push");
    }
    alpha
        .sql("UPDATE notifications SET email_enqueued_at = created_at")
        .await;

    let beta_worker = Background::start(beta.state.clone())
        .await
        .expect("beta's background starts");
    assert!(
        eventually(Duration::from_secs(30), async || beta_sink.messages().len()
            >= 3)
        .await,
        "beta's emails were sent"
    );
    let alpha_worker = Background::start(alpha.state.clone())
        .await
        .expect("alpha's background starts");
    assert!(
        eventually(Duration::from_secs(30), async || alpha_sink
            .messages()
            .len()
            >= 3)
        .await,
        "alpha's emails were sent: beta's worker left them alone"
    );
    for (sink, name) in [(alpha_sink, "alpha"), (beta_sink, "beta")] {
        let recipients: Vec<Vec<String>> = sink.messages().into_iter().map(|(to, _)| to).collect();
        assert_eq!(
            recipients,
            vec![vec![format!("{name}@example.com")]; 3],
            "{name}'s sink got exactly {name}'s three emails"
        );
    }
    for worker in [&alpha_worker, &beta_worker] {
        assert_eq!(
            worker
                .delivery
                .failed_attempts
                .load(std::sync::atomic::Ordering::Relaxed),
            0,
            "no worker met a job that was not its own"
        );
    }
    alpha_worker.stop(Duration::from_secs(10)).await;
    beta_worker.stop(Duration::from_secs(10)).await;
}

/// A job naming a notification this database does not have (another
/// deployment's, say) fails and is counted; it is never marked done.
#[tokio::test]
async fn a_job_for_an_unknown_notification_is_a_failure() {
    let app = TestApp::builder()
        .env("SCHEDULER_ENABLED", "false")
        .build()
        .await;
    let context = loan_tracker::notifications::delivery::DeliveryContext::new(app.state.clone())
        .expect("delivery context");
    let outcome =
        loan_tracker::notifications::delivery::deliver_notification(&context, Uuid::now_v7()).await;
    let error = outcome.expect_err("an unknown notification is not delivered");
    assert!(error.to_string().contains("no notification"), "{error:#}");
}
