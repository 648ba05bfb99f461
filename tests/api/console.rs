//! The staff console through the router, as a browser without script
//! would use it: cookies kept, forms posted as
//! `application/x-www-form-urlencoded`, redirects followed by hand. (The
//! same flows in a real Chromium are in `console_browser.rs`.)

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::json;
use uuid::Uuid;

use crate::support::{PASSWORD, TestApp, TestResponse};

const CONSOLE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
    form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// A cookie-keeping client of the console.
pub struct Browser<'a> {
    app: &'a TestApp,
    cookies: HashMap<String, String>,
    headers: Vec<(String, String)>,
    /// The CSRF token of the last page that had a form.
    csrf: Option<String>,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Browser<'a> {
        Browser {
            app,
            cookies: HashMap::new(),
            headers: Vec::new(),
            csrf: None,
        }
    }

    async fn request(&mut self, method: Method, path: &str, form: Option<String>) -> TestResponse {
        let mut builder = Request::builder().method(method).uri(path);
        if !self.cookies.is_empty() {
            let cookie: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            builder = builder.header("cookie", cookie.join("; "));
        }
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let request = match form {
            Some(form) => builder
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(form)),
            None => builder.body(Body::empty()),
        };
        let response = self.app.send(request.expect("request")).await;
        for value in response.headers.get_all("set-cookie") {
            let text = value.to_str().expect("cookie text");
            let (pair, _) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        if let Some(token) = csrf_of(&response.text) {
            self.csrf = Some(token);
        }
        response
    }

    pub async fn get(&mut self, path: &str) -> TestResponse {
        self.request(Method::GET, path, None).await
    }

    /// Posts `fields` with the CSRF token of the last page seen.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> TestResponse {
        let token = self
            .csrf
            .clone()
            .expect("a page with a form was seen first");
        let mut all = vec![("csrf_token", token.as_str())];
        all.extend_from_slice(fields);
        self.post_exactly(path, &all).await
    }

    /// Posts exactly `fields` (no token added).
    pub async fn post_exactly(&mut self, path: &str, fields: &[(&str, &str)]) -> TestResponse {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.request(Method::POST, path, Some(body)).await
    }

    pub async fn sign_in(&mut self, identifier: &str, password: &str) -> TestResponse {
        self.get("/console").await.assert_status(200);
        self.post(
            "/console/sign-in",
            &[("identifier", identifier), ("password", password)],
        )
        .await
    }

    /// Signs in as `user` (registered as `<name>@example.com`) and lands on
    /// the loans page.
    pub async fn signed_in(app: &'a TestApp, username: &str) -> Browser<'a> {
        let mut browser = Browser::new(app);
        let answer = browser.sign_in(username, PASSWORD).await;
        answer.assert_status(303);
        assert_eq!(answer.header("location"), Some("/console/loans"));
        browser.get("/console/loans").await.assert_status(200);
        browser
    }
}

fn csrf_of(html: &str) -> Option<String> {
    let start = html.find("name=\"csrf_token\" value=\"")? + "name=\"csrf_token\" value=\"".len();
    Some(html[start..start + 64].to_owned())
}

/// The redirect's target, after asserting it is a 303.
#[track_caller]
fn redirected(response: &TestResponse) -> String {
    response.assert_status(303);
    response.header("location").expect("location").to_owned()
}

fn loan_path(loan_id: Uuid) -> String {
    format!("/console/loans/{loan_id}")
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_session_cookie_under_the_strict_csp() {
    let app = TestApp::spawn().await;
    app.admin().await;
    let mut browser = Browser::new(&app);
    let page = browser.get("/console").await;
    page.assert_status(200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("content-security-policy"), Some(CONSOLE_CSP));
    assert!(
        page.text
            .contains("<label for=\"sign-in-identifier\">Email or username</label>"),
        "{}",
        page.text
    );
    assert!(!page.text.contains("<script"), "no script at all");
    let nonce = page.header("set-cookie").expect("nonce cookie");
    assert!(nonce.starts_with("lt_console_sign_in="), "{nonce}");
    assert!(
        nonce.contains("HttpOnly") && nonce.contains("SameSite=Strict"),
        "{nonce}"
    );

    let answer = browser
        .post(
            "/console/sign-in",
            &[("identifier", "admin@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(redirected(&answer), "/console/loans");
    let session = answer
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("lt_console="))
        .expect("session cookie");
    assert!(
        session.ends_with("; Path=/console; HttpOnly; SameSite=Strict; Max-Age=2592000"),
        "{session}"
    );
    assert!(
        !session.contains("Secure"),
        "plain HTTP without a proxy: {session}"
    );
    let loans = browser.get("/console/loans").await;
    loans.assert_status(200);
    assert!(
        loans
            .text
            .contains("Signed in as <strong>admin</strong> (ADMIN)"),
        "{}",
        loans.text
    );
    assert_eq!(app.audit_rows("LOGIN_SUCCEEDED").await.len(), 1);

    // The stylesheet is the page's only other resource.
    let css = browser.get("/console/console.css").await;
    css.assert_status(200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert!(css.text.contains(".money { text-align: right;"));
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_audited_and_a_form_without_its_token_is_not_even_tried() {
    let app = TestApp::spawn().await;
    app.admin().await;
    let mut browser = Browser::new(&app);
    let refused = browser.sign_in("admin", "not the password").await;
    refused.assert_status(401);
    assert!(
        refused.text.contains("Invalid credentials."),
        "{}",
        refused.text
    );
    // What was typed is kept, except the password.
    assert!(
        refused
            .text
            .contains("name=\"identifier\" type=\"text\" value=\"admin\""),
        "{}",
        refused.text
    );
    assert!(!refused.text.contains("not the password"));
    assert!(!browser.cookies.contains_key("lt_console"));
    assert_eq!(app.audit_rows("LOGIN_FAILED").await.len(), 1);

    let forged = browser
        .post_exactly(
            "/console/sign-in",
            &[("identifier", "admin"), ("password", PASSWORD)],
        )
        .await;
    forged.assert_status(403);
    assert!(
        forged.text.contains("CSRF token is missing or wrong"),
        "{}",
        forged.text
    );
    let wrong = browser
        .post_exactly(
            "/console/sign-in",
            &[
                ("csrf_token", &"0".repeat(64)),
                ("identifier", "admin"),
                ("password", PASSWORD),
            ],
        )
        .await;
    wrong.assert_status(403);
    assert!(!browser.cookies.contains_key("lt_console"));
    assert_eq!(app.audit_rows("LOGIN_FAILED").await.len(), 1);
    assert!(app.audit_rows("LOGIN_SUCCEEDED").await.is_empty());
}

#[tokio::test]
async fn a_borrower_is_told_the_console_is_for_staff_and_keeps_no_session() {
    let app = TestApp::spawn().await;
    let borrower = app.register("borrower").await;
    let mut browser = Browser::new(&app);
    let refused = browser.sign_in("borrower", PASSWORD).await;
    refused.assert_status(403);
    assert!(
        refused.text.contains("The console is for staff"),
        "{}",
        refused.text
    );
    assert!(!browser.cookies.contains_key("lt_console"));
    // The login it made was logged out at once.
    assert_eq!(app.audit_rows("LOGOUT").await.len(), 1);
    assert_eq!(redirected(&browser.get("/console/loans").await), "/console");
    // A user demoted while signed in is turned away on the next page.
    app.manager().await;
    let mut staff = Browser::signed_in(&app, "manager").await;
    app.sql("UPDATE users SET role = 'USER' WHERE username = 'manager'")
        .await;
    let demoted = staff.get("/console/loans").await;
    demoted.assert_status(403);
    assert!(demoted.text.contains("The console is for staff"));
    // Only the console's login was ended: the borrower's own API session
    // (from registration) still works.
    let me = app.get("/users/me", &borrower.token).await;
    me.assert_status(200);
    assert_eq!(me.body["username"], "borrower");
}

#[tokio::test]
async fn sign_in_attempts_count_against_the_api_login_limit() {
    let app = TestApp::builder()
        .env("AUTH_RATE_LIMIT_PER_MINUTE", "2")
        .build()
        .await;
    app.admin().await; // one attempt: its registration
    let mut browser = Browser::new(&app);
    browser.sign_in("admin", "wrong").await.assert_status(401);
    let limited = browser.sign_in("admin", PASSWORD).await;
    limited.assert_status(429);
    assert!(limited.header("retry-after").is_some());
    assert!(limited.text.contains("role=\"alert\""), "{}", limited.text);
    assert!(!browser.cookies.contains_key("lt_console"));
}

#[tokio::test]
async fn the_session_cookie_is_secure_when_a_trusted_proxy_says_https() {
    let behind_proxy = TestApp::builder()
        .env("TRUSTED_PROXIES", "127.0.0.1")
        .build()
        .await;
    let cookies = cookies_over_https(&behind_proxy).await;
    assert!(
        cookies.iter().all(|cookie| cookie.ends_with("; Secure")),
        "{cookies:?}"
    );
    // A client saying so itself is not believed.
    let cookies = cookies_over_https(&TestApp::spawn().await).await;
    assert!(
        cookies.iter().all(|cookie| !cookie.contains("Secure")),
        "{cookies:?}"
    );
}

/// The cookies a sign-in sets when the request says it came over HTTPS.
async fn cookies_over_https(app: &TestApp) -> Vec<String> {
    app.admin().await;
    let mut browser = Browser::new(app);
    browser
        .headers
        .push(("x-forwarded-proto".into(), "https".into()));
    let answer = browser.sign_in("admin", PASSWORD).await;
    answer
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_form_without_the_session_csrf_token_changes_nothing() {
    let app = TestApp::spawn().await;
    let loan_id = pending_loan(&app, "1200.00").await;
    let mut browser = Browser::signed_in(&app, "admin").await;
    let path = format!("/console/loans/{loan_id}/approve");
    let forged = browser
        .post_exactly(&path, &[("annualInterestRate", "10")])
        .await;
    forged.assert_status(403);
    assert!(forged.text.contains("CSRF token is missing or wrong"));
    // The token of someone else's session does not do either.
    app.manager().await;
    let other = Browser::signed_in(&app, "manager").await;
    let borrowed = other.csrf.clone().expect("token");
    browser
        .post_exactly(&path, &[("csrf_token", &borrowed)])
        .await
        .assert_status(403);
    let loan = app.loan_body(&admin_token(&app).await, &loan_id).await;
    assert_eq!(loan["status"], "PENDING");
    assert!(app.audit_rows("LOAN_APPROVED").await.is_empty());
}

/// A borrower's loan of `amount` over 12 months, waiting for approval,
/// and an admin (`admin`) to work it.
async fn pending_loan(app: &TestApp, amount: &str) -> Uuid {
    let borrower = app.register("borrower").await;
    app.admin().await;
    app.apply(&borrower, amount, 12).await
}

async fn admin_token(app: &TestApp) -> String {
    let login = app
        .login(json!({"username": "admin", "password": PASSWORD}))
        .await;
    login.body["accessToken"]
        .as_str()
        .expect("token")
        .to_owned()
}

#[tokio::test]
async fn staff_approve_pay_and_reverse_a_payment_through_the_console() {
    let app = TestApp::spawn().await;
    let loan_id = pending_loan(&app, "10000.00").await;
    let loan = app.loan_body(&admin_token(&app).await, &loan_id).await;
    let borrower_id = loan["userId"].as_str().expect("borrower").to_owned();
    let mut browser = Browser::signed_in(&app, "admin").await;
    let page = browser.get(&loan_path(loan_id)).await;
    assert!(page.text.contains("<h3>Approve</h3>"), "{}", page.text);

    let approved = browser
        .post(
            &format!("/console/loans/{loan_id}/approve"),
            &[("annualInterestRate", "12"), ("firstDueDate", "2026-02-15")],
        )
        .await;
    assert_eq!(
        redirected(&approved),
        format!("/console/loans/{loan_id}?done=approved")
    );
    let page = browser.get(&redirected(&approved)).await;
    assert!(page.text.contains("Loan approved; its schedule is below."));
    // The golden schedule: 888.49 a month, 100.00 interest in the first.
    assert!(page.text.contains("<td>1</td><td>2026-02-15</td><td class=\"money\">788.49</td><td class=\"money\">100.00</td>"), "{}", page.text);
    assert!(page.text.contains("DISBURSEMENT"));

    let key = csrf_free_key(&page.text);
    let fields = [
        ("amount", "888.49"),
        ("valueDate", ""),
        ("excess", ""),
        ("idempotencyKey", key.as_str()),
    ];
    let paid = browser
        .post(&format!("/console/loans/{loan_id}/payments"), &fields)
        .await;
    assert_eq!(
        redirected(&paid),
        format!("/console/loans/{loan_id}?done=paid")
    );
    // Sent twice (a double click, a reload): recorded once.
    browser
        .post(&format!("/console/loans/{loan_id}/payments"), &fields)
        .await
        .assert_status(303);
    let token = admin_token(&app).await;
    let payments = app
        .get(
            &format!("/payments/user/{}?loanId={loan_id}", borrower_id),
            &token,
        )
        .await;
    let items = payments.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["amount"], "888.49");
    let admin_id = app
        .login(json!({"username": "admin", "password": PASSWORD}))
        .await
        .body["user"]["id"]
        .clone();
    assert_eq!(items[0]["recordedBy"], admin_id);
    let payment_id = items[0]["id"].as_str().expect("id").to_owned();

    let page = browser
        .get(&format!(
            "/console/payments/{payment_id}/reverse?loanId={loan_id}"
        ))
        .await;
    page.assert_status(200);
    assert!(
        page.text.contains("<dd class=\"money\">888.49 USD</dd>"),
        "{}",
        page.text
    );
    let reversed = browser
        .post(
            &format!("/console/payments/{payment_id}/reverse"),
            &[
                ("loanId", &loan_id.to_string()),
                ("reason", "bounced cheque"),
            ],
        )
        .await;
    assert_eq!(
        redirected(&reversed),
        format!("/console/loans/{loan_id}?done=reversed")
    );
    let page = browser.get(&loan_path(loan_id)).await;
    assert!(page.text.contains("REVERSED"), "{}", page.text);
    assert!(page.text.contains("bounced cheque"));
    let loan = app.loan_body(&token, &loan_id).await;
    assert_eq!(loan["totalPaid"], "0.00");
    assert_eq!(
        app.verify_books(loan_id).await.expect("books"),
        Vec::<String>::new()
    );
}

/// The idempotency key the payment form carries.
fn csrf_free_key(html: &str) -> String {
    let marker = "name=\"idempotencyKey\" value=\"";
    let start = html.find(marker).expect("payment form") + marker.len();
    html[start..start + 36].to_owned()
}

#[tokio::test]
async fn a_refused_form_is_shown_again_with_what_was_typed_and_why_beside_the_field() {
    let app = TestApp::spawn().await;
    let (_, _, loan_id) = app.golden_loan().await;
    let mut browser = Browser::signed_in(&app, "admin").await;
    browser.get(&loan_path(loan_id)).await;
    let refused = browser
        .post(
            &format!("/console/loans/{loan_id}/payments"),
            &[
                ("amount", "99999.00"),
                ("valueDate", "2026-01-15"),
                ("excess", "REDUCE_TERM"),
                ("idempotencyKey", "k-1"),
            ],
        )
        .await;
    refused.assert_status(422);
    let text = &refused.text;
    assert!(text.contains("<input id=\"pay-amount\" name=\"amount\" type=\"text\" value=\"99999.00\" aria-invalid=\"true\" aria-describedby=\"pay-amount-error\"><span class=\"error\" id=\"pay-amount-error\">pays 99999.00 USD beyond what is due; a prepayment must be less than the 10000.00 USD of principal the open installments owe (to pay everything, settle the loan at its payoff quote)</span>"), "{text}");
    assert!(
        text.contains(
            "<input id=\"pay-valueDate\" name=\"valueDate\" type=\"date\" value=\"2026-01-15\">"
        ),
        "{text}"
    );
    assert!(
        text.contains("<option value=\"REDUCE_TERM\" selected>"),
        "{text}"
    );
    assert!(
        text.contains("name=\"idempotencyKey\" value=\"k-1\""),
        "{text}"
    );
    // A conflict without a field is said at the top of its form.
    let conflict = browser
        .post(&format!("/console/loans/{loan_id}/approve"), &[])
        .await;
    conflict.assert_status(409);
    let token = admin_token(&app).await;
    let api = app
        .patch(&format!("/loans/{loan_id}/approve"), &token, None)
        .await;
    let detail = api.assert_problem(409)["detail"]
        .as_str()
        .expect("detail")
        .to_owned();
    assert!(
        !conflict.text.contains("<h3>Approve</h3>"),
        "no approve form on an approved loan"
    );
    assert!(
        conflict.text.contains(&format!(
            "<h2 id=\"actions\">Actions</h2><p class=\"refusal\" role=\"alert\">{detail}</p>"
        )),
        "{}",
        conflict.text
    );
    assert_eq!(app.count("payments").await, 0);
}

#[tokio::test]
async fn a_backdated_payment_entered_in_the_console_waives_the_fee_the_job_charged() {
    let app = TestApp::spawn().await;
    let (_, _, loan_id) = app.golden_loan().await;
    app.clock
        .set(crate::support::start_time() + chrono::Duration::days(32)); // 2026-02-16
    let mut browser = Browser::signed_in(&app, "admin").await;
    browser.get("/console/jobs").await.assert_status(200);
    let ran = browser
        .post("/console/jobs/overdue-check/run", &[("asOf", "")])
        .await;
    assert_eq!(
        redirected(&ran),
        "/console/jobs?done=overdue-check&asOf=2026-02-16&processed=1"
    );
    let jobs = browser.get(&redirected(&ran)).await;
    assert!(
        jobs.text
            .contains("overdue-check ran for 2026-02-16: 1 rows processed."),
        "{}",
        jobs.text
    );
    assert!(
        jobs.text.contains(
            "<th scope=\"row\">overdue-check</th><td>2026-02-16</td><td>API</td><td>SUCCEEDED</td>"
        ),
        "{}",
        jobs.text
    );
    let overdue = browser.get("/console/overdue").await;
    assert!(overdue.text.contains("<td class=\"money\">1</td><td class=\"money\">932.91</td><td class=\"money\">0.00</td><td class=\"money\">44.42</td>"), "{}", overdue.text);

    let page = browser.get(&loan_path(loan_id)).await;
    assert!(
        page.text
            .contains("<dt>Penalties outstanding</dt><dd class=\"money\">44.42 USD</dd>"),
        "{}",
        page.text
    );
    assert!(
        page.text
            .contains("<td class=\"money\">44.42</td><td class=\"money\">932.91</td>"),
        "{}",
        page.text
    );
    let key = csrf_free_key(&page.text);
    let paid = browser
        .post(
            &format!("/console/loans/{loan_id}/payments"),
            &[
                ("amount", "888.49"),
                ("valueDate", "2026-02-15"),
                ("excess", ""),
                ("idempotencyKey", &key),
            ],
        )
        .await;
    let page = browser.get(&redirected(&paid)).await;
    assert!(
        page.text
            .contains("<dt>Penalties outstanding</dt><dd class=\"money\">0.00 USD</dd>"),
        "{}",
        page.text
    );
    assert!(page.text.contains("<td>1</td><td>2026-02-15</td><td class=\"money\">788.49</td><td class=\"money\">100.00</td><td class=\"money\">0.00</td><td class=\"money\">888.49</td><td class=\"money\">888.49</td><td>PAID</td>"), "{}", page.text);
    assert!(!page.text.contains("44.42"));
    assert_eq!(
        app.verify_books(loan_id).await.expect("books"),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn a_write_off_asked_in_the_console_is_confirmed_by_another_admin_from_the_inbox() {
    let app = TestApp::spawn().await;
    let (_, admin, loan_id) = app.golden_loan().await;
    app.user_with_role("second", "ADMIN").await;
    app.clock
        .set(crate::support::start_time() + chrono::Duration::days(60));
    let token = admin.token.clone();
    app.run_job(&admin, "overdue-check", "2026-03-16").await;
    assert_eq!(app.loan_body(&token, &loan_id).await["status"], "OVERDUE");

    let mut asker = Browser::signed_in(&app, "admin").await;
    asker.get(&loan_path(loan_id)).await;
    let blank = asker
        .post(
            &format!("/console/loans/{loan_id}/write-off"),
            &[("reason", "  ")],
        )
        .await;
    blank.assert_status(422);
    assert!(
        blank.text.contains("id=\"write-off-reason-error\""),
        "{}",
        blank.text
    );
    let asked = asker
        .post(
            &format!("/console/loans/{loan_id}/write-off"),
            &[("reason", "borrower unreachable")],
        )
        .await;
    let location = redirected(&asked);
    assert!(
        location.starts_with(&format!(
            "/console/loans/{loan_id}?done=requested&decision="
        )),
        "{location}"
    );
    let page = asker.get(&location).await;
    assert!(page.text.contains("is in the decisions inbox"));
    assert!(
        page.text
            .contains("<h2 id=\"pending\">Pending decisions</h2>")
    );
    // The asker may withdraw, not confirm.
    let own = asker.get("/console/decisions").await;
    assert!(
        own.text.contains("Withdraw my request") && !own.text.contains(">Confirm</button>"),
        "{}",
        own.text
    );

    let mut checker = Browser::signed_in(&app, "second").await;
    let inbox = checker.get("/console/decisions").await;
    assert!(
        inbox.text.contains("WRITE_OFF · decision"),
        "{}",
        inbox.text
    );
    assert!(
        inbox
            .text
            .contains("<dt>Asked by</dt><dd>admin (admin@example.com)</dd>"),
        "{}",
        inbox.text
    );
    assert!(
        inbox
            .text
            .contains("<dt>Request: reason</dt><dd>borrower unreachable</dd>"),
        "{}",
        inbox.text
    );
    let decision_id = location.rsplit('=').next().expect("decision id");
    let confirmed = checker
        .post(&format!("/console/decisions/{decision_id}/confirm"), &[])
        .await;
    assert_eq!(redirected(&confirmed), "/console/decisions?done=confirmed");
    let loan = app.loan_body(&token, &loan_id).await;
    assert_eq!(loan["status"], "WRITTEN_OFF");
    assert_eq!(loan["principalWrittenOff"], "10000.00");
    // Confirmed once; a second confirmation is refused where it was asked.
    let again = checker
        .post(&format!("/console/decisions/{decision_id}/confirm"), &[])
        .await;
    again.assert_status(409);
    let api = app
        .post(
            &format!("/decisions/{decision_id}/confirm"),
            Some(&token),
            json!({}),
        )
        .await;
    let detail = api.assert_problem(409)["detail"]
        .as_str()
        .expect("detail")
        .to_owned();
    assert!(
        again
            .text
            .contains(&format!("<p class=\"refusal\" role=\"alert\">{detail}</p>")),
        "{}",
        again.text
    );
    assert_eq!(
        app.verify_books(loan_id).await.expect("books"),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn csv_downloads_are_the_apis_csv_as_an_attachment() {
    let app = TestApp::spawn().await;
    let (_, _, _) = app.golden_loan().await;
    let token = admin_token(&app).await;
    let mut browser = Browser::signed_in(&app, "admin").await;
    let portfolio = browser.get("/console/portfolio").await;
    assert!(
        portfolio.text.contains(
            "<th scope=\"row\">Principal disbursed</th><td class=\"money\">10000.00</td>"
        ),
        "{}",
        portfolio.text
    );
    let csv = browser.get("/console/portfolio.csv").await;
    csv.assert_status(200);
    assert_eq!(
        csv.header("content-disposition"),
        Some("attachment; filename=\"portfolio-2026-01-15.csv\"")
    );
    assert_eq!(csv.text, api_csv(&app, &token, "/reports/portfolio").await);
    assert!(csv.text.starts_with("bucket,loans,principalOutstanding\n"));

    let balance = browser.get("/console/trial-balance?asOf=2026-01-15").await;
    assert!(
        balance
            .text
            .contains("<th scope=\"row\">LOANS_RECEIVABLE</th>"),
        "{}",
        balance.text
    );
    let csv = browser
        .get("/console/trial-balance.csv?asOf=2026-01-15")
        .await;
    assert_eq!(
        csv.header("content-disposition"),
        Some("attachment; filename=\"trial-balance-2026-01-15.csv\"")
    );
    let api = api_csv(&app, &token, "/accounting/trial-balance?asOf=2026-01-15").await;
    assert_eq!(csv.text, api);
    let future = browser.get("/console/trial-balance?asOf=2027-01-01").await;
    future.assert_status(422);
    assert!(
        future
            .text
            .contains("id=\"trial-balance-asOf-error\">must not be after today (2026-01-15)"),
        "{}",
        future.text
    );
}

/// The API's CSV of `path`, as `token`'s holder.
pub async fn api_csv(app: &TestApp, token: &str, path: &str) -> String {
    let request = Request::get(path)
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "text/csv")
        .body(Body::empty())
        .expect("request");
    let response = app.send(request).await;
    response.assert_status(200);
    response.text
}

#[tokio::test]
async fn the_loan_list_filters_by_status_bucket_and_borrower_email() {
    let app = TestApp::spawn().await;
    let (_, _, approved) = app.golden_loan().await;
    let other = app.register("other").await;
    let pending = app.apply(&other, "500.00", 6).await;
    let mut browser = Browser::signed_in(&app, "admin").await;
    let all = browser.get("/console/loans").await;
    assert!(all.text.contains(&approved.to_string()) && all.text.contains(&pending.to_string()));
    assert!(
        all.text.contains("<td>other@example.com</td>"),
        "{}",
        all.text
    );
    let by_status = browser.get("/console/loans?status=PENDING&bucket=").await;
    assert!(
        by_status.text.contains(&pending.to_string())
            && !by_status.text.contains(&approved.to_string())
    );
    assert!(
        by_status
            .text
            .contains("<option value=\"PENDING\" selected>")
    );
    let by_bucket = browser.get("/console/loans?bucket=CURRENT").await;
    assert!(
        by_bucket.text.contains(&approved.to_string())
            && !by_bucket.text.contains(&pending.to_string())
    );
    let by_email = browser
        .get("/console/loans?email=Other%40Example.com")
        .await;
    assert!(
        by_email.text.contains(&pending.to_string())
            && !by_email.text.contains(&approved.to_string())
    );
    let nobody = browser
        .get("/console/loans?email=nobody%40example.com")
        .await;
    nobody.assert_status(200);
    assert!(nobody.text.contains("No loans match."));
    let bogus = browser.get("/console/loans?status=LOST").await;
    bogus.assert_status(422);
    assert!(
        bogus.text.contains("id=\"filter-status-error\""),
        "{}",
        bogus.text
    );
    let unknown = browser
        .get(&format!("/console/loans/{}", Uuid::now_v7()))
        .await;
    unknown.assert_status(404);
    browser
        .get("/console/loans/not-an-id")
        .await
        .assert_status(404);
}

#[tokio::test]
async fn signing_out_revokes_the_session() {
    let app = TestApp::spawn().await;
    app.admin().await;
    let mut browser = Browser::signed_in(&app, "admin").await;
    let kept = browser.cookies.clone();
    let out = browser.post("/console/sign-out", &[]).await;
    out.assert_status(200);
    assert!(out.text.contains("You are signed out."));
    assert!(!browser.cookies.contains_key("lt_console"));
    assert_eq!(app.audit_rows("LOGOUT").await.len(), 1);
    // The old cookie, replayed, no longer works.
    browser.cookies = kept;
    assert_eq!(redirected(&browser.get("/console/loans").await), "/console");
}

#[tokio::test]
async fn a_long_loan_shows_its_payments_and_journal_a_page_at_a_time() {
    let app = TestApp::spawn().await;
    let (_, admin, loan_id) = app.golden_loan().await;
    for _ in 0..51 {
        app.pay(&admin, loan_id, json!("1.00"), None)
            .await
            .assert_status(201);
    }
    let mut browser = Browser::signed_in(&app, "admin").await;
    let first = browser.get(&loan_path(loan_id)).await;
    let rows = |html: &str| {
        let start = html
            .find("<section aria-labelledby=\"payments\">")
            .expect("payments");
        let end = start + html[start..].find("</section>").expect("section end");
        html[start..end].matches("<tr><th scope=\"row\"").count()
    };
    assert_eq!(rows(&first.text), 50, "the newest 50 payments");
    let marker = "<p class=\"pages\"><a href=\"";
    let links: Vec<&str> = first
        .text
        .match_indices(marker)
        .map(|(at, _)| {
            let rest = &first.text[at + marker.len()..];
            &rest[..rest.find('"').expect("link end")]
        })
        .collect();
    assert_eq!(links.len(), 2, "more payments and more journal: {links:?}");
    assert!(links[0].contains("paymentsCursor=") && links[0].ends_with("#payments"));
    assert!(links[1].contains("journalCursor=") && links[1].ends_with("#journal"));
    let older = browser.get(&links[0].replace("&amp;", "&")).await;
    older.assert_status(200);
    assert_eq!(rows(&older.text), 1, "the oldest payment");
    // 1 disbursement and 51 repayments: the journal's second page has 2.
    let later = browser.get(&links[1].replace("&amp;", "&")).await;
    assert_eq!(
        later.text.matches(">REPAYMENT<").count(),
        2,
        "{}",
        later.text
    );
}
