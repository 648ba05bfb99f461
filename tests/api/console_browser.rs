//! The staff console in a real browser: headless Chromium, driven over
//! WebDriver, through a served instance on a loopback port. Screenshots
//! of the pages go to `$CONSOLE_SCREENSHOTS` (default
//! `target/console-screenshots`); `docs/console.md` shows them.

use std::path::PathBuf;

use serde_json::json;

use crate::console::api_csv;
use crate::support::{Needs, PASSWORD, TestApp, may_run, serve_app, start_time};
use crate::webdriver::{self, Chromium};

fn screenshots() -> PathBuf {
    std::env::var_os("CONSOLE_SCREENSHOTS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots"),
        PathBuf::from,
    )
}

/// Signs in with the keyboard only: type, and Enter submits.
async fn sign_in(browser: &Chromium, base: &str, username: &str) {
    browser.open(&format!("{base}/console")).await;
    browser.fill("#sign-in-identifier", username).await;
    browser.fill("#sign-in-password", PASSWORD).await;
    browser.press_enter("#sign-in-password").await;
}

async fn sign_out(browser: &Chromium) {
    browser.click("form.sign-out button").await;
    assert_eq!(
        browser.text("main p[role=status]").await,
        "You are signed out."
    );
}

fn day(offset_days: i64) -> chrono::DateTime<chrono::Utc> {
    start_time() + chrono::Duration::days(offset_days)
}

#[tokio::test]
async fn staff_work_a_loan_from_approval_to_write_off_in_chromium() {
    if !may_run(
        "console_browser::staff_work_a_loan",
        Needs::Browser,
        webdriver::available(),
    ) {
        return;
    }
    // The test moves the clock two months on: sessions last a year here.
    let app = TestApp::builder()
        .env("REFRESH_TOKEN_TTL_SECS", "31536000")
        .build()
        .await;
    let borrower = app.register("borrower").await;
    app.admin().await;
    app.user_with_role("second", "ADMIN").await;
    let loan_id = app.apply(&borrower, "10000.00", 12).await;
    let served = serve_app(&app).await;
    let base = format!("http://{}", served.address);
    let folder = screenshots();
    let browser = Chromium::start().await;

    sign_in(&browser, &base, "admin").await;
    assert_eq!(browser.url().await, format!("{base}/console/loans"));
    assert!(
        browser
            .text("header")
            .await
            .contains("Signed in as admin (ADMIN)")
    );
    browser.screenshot(&folder, "loans").await;

    // Approve at 12 %, first due 2026-02-15: the golden schedule.
    browser
        .click(&format!("a[href='/console/loans/{loan_id}']"))
        .await;
    browser.fill("#approve-annualInterestRate", "12").await;
    browser
        .set_value("#approve-firstDueDate", "2026-02-15")
        .await;
    browser
        .click("#approve-firstDueDate ~ button, form[action$='/approve'] button")
        .await;
    assert_eq!(
        browser.text("p[role=status]").await,
        "Loan approved; its schedule is below."
    );
    assert_eq!(
        browser.text("#schedule ~ table tbody tr:first-child").await,
        "1 2026-02-15 788.49 100.00 0.00 888.49 0.00 PENDING"
    );

    // A day after the due date the job charges the late fee …
    app.clock.set(day(32));
    browser.click("nav a[href='/console/jobs']").await;
    browser
        .click("form[action='/console/jobs/overdue-check/run'] button")
        .await;
    assert_eq!(
        browser.text("p[role=status]").await,
        "overdue-check ran for 2026-02-16: 1 rows processed."
    );
    browser
        .open(&format!("{base}/console/loans/{loan_id}"))
        .await;
    assert!(
        browser
            .text("dl.figures")
            .await
            .contains("Penalties outstanding\n44.42 USD")
    );

    // … a refused payment keeps what was typed and says why beside it …
    browser.fill("#pay-amount", "12.345").await;
    browser.click("form[action$='/payments'] button").await;
    assert_eq!(
        browser.property("#pay-amount", "value").await,
        json!("12.345")
    );
    assert_eq!(
        browser.text("#pay-amount-error").await,
        "must have at most two decimal places"
    );
    browser.screenshot(&folder, "refused-payment").await;

    // … and the transfer that left on the due date waives it.
    browser.fill("#pay-amount", "888.49").await;
    browser.set_value("#pay-valueDate", "2026-02-15").await;
    browser.click("form[action$='/payments'] button").await;
    assert_eq!(browser.text("p[role=status]").await, "Payment recorded.");
    assert!(
        browser
            .text("dl.figures")
            .await
            .contains("Penalties outstanding\n0.00 USD")
    );
    assert_eq!(
        browser.text("#schedule ~ table tbody tr:first-child").await,
        "1 2026-02-15 788.49 100.00 0.00 888.49 888.49 PAID"
    );
    browser.screenshot(&folder, "loan").await;

    // Installment #2 is missed: OVERDUE, and a write-off is asked.
    app.clock.set(day(61)); // 2026-03-17
    browser.open(&format!("{base}/console/jobs")).await;
    browser
        .click("form[action='/console/jobs/overdue-check/run'] button")
        .await;
    browser
        .open(&format!("{base}/console/loans/{loan_id}"))
        .await;
    browser
        .fill("#write-off-reason", "borrower unreachable since March")
        .await;
    browser.click("form[action$='/write-off'] button").await;
    assert!(
        browser
            .text("p[role=status]")
            .await
            .ends_with("is in the decisions inbox.")
    );
    sign_out(&browser).await;

    // Another admin confirms it from the inbox.
    sign_in(&browser, &base, "second").await;
    browser.click("nav a[href='/console/decisions']").await;
    let card = browser.text("article.decision").await;
    assert!(
        card.contains("Asked by\nadmin (admin@example.com)"),
        "{card}"
    );
    assert!(
        card.contains("Request: reason\nborrower unreachable since March"),
        "{card}"
    );
    browser.screenshot(&folder, "decisions").await;
    browser
        .click("article.decision form[action$='/confirm'] button")
        .await;
    assert_eq!(browser.text("p[role=status]").await, "Decision confirmed.");
    browser
        .open(&format!("{base}/console/loans/{loan_id}"))
        .await;
    let figures = browser.text("dl.figures").await;
    assert!(figures.contains("Status\nWRITTEN_OFF"), "{figures}");
    assert!(
        figures.contains("Principal written off\n9211.51 USD"),
        "{figures}"
    );

    // The portfolio, and its CSV as a download.
    browser.click("nav a[href='/console/portfolio']").await;
    browser.screenshot(&folder, "portfolio").await;
    let csv = browser
        .download(
            "a[href='/console/portfolio.csv']",
            "portfolio-2026-03-17.csv",
        )
        .await;
    let login = app
        .login(json!({"username": "admin", "password": PASSWORD}))
        .await;
    let token = login.body["accessToken"].as_str().expect("token");
    assert_eq!(csv, api_csv(&app, token, "/reports/portfolio").await);
    sign_out(&browser).await;
    browser.open(&format!("{base}/console/loans")).await;
    assert_eq!(browser.url().await, format!("{base}/console"));
    browser.quit().await;
    assert_eq!(
        app.verify_books(loan_id).await.expect("books"),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn a_borrower_and_a_form_without_its_token_are_refused_in_chromium() {
    if !may_run(
        "console_browser::refusals",
        Needs::Browser,
        webdriver::available(),
    ) {
        return;
    }
    let app = TestApp::spawn().await;
    let borrower = app.register("borrower").await;
    let admin = app.admin().await;
    let loan_id = app.apply(&borrower, "500.00", 6).await;
    let served = serve_app(&app).await;
    let base = format!("http://{}", served.address);
    let browser = Chromium::start().await;

    sign_in(&browser, &base, "borrower").await;
    assert!(
        browser
            .text("main p[role=alert]")
            .await
            .starts_with("The console is for staff")
    );
    assert!(
        browser
            .cookies()
            .await
            .iter()
            .all(|cookie| cookie["name"] != "lt_console")
    );

    sign_in(&browser, &base, "admin").await;
    let session = browser
        .cookies()
        .await
        .into_iter()
        .find(|cookie| cookie["name"] == "lt_console")
        .expect("session cookie");
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["sameSite"], "Strict");
    browser
        .open(&format!("{base}/console/loans/{loan_id}"))
        .await;
    // A forged form: the same fields, without the token.
    browser
        .execute(
            "document.querySelector(\"form[action$='/reject'] input[name=csrf_token]\").remove();",
            json!([]),
        )
        .await;
    browser.fill("#reject-reason", "forged").await;
    browser.click("form[action$='/reject'] button").await;
    assert!(
        browser
            .text("main p[role=alert]")
            .await
            .contains("CSRF token is missing or wrong")
    );
    browser
        .screenshot(&screenshots(), "refused-without-token")
        .await;
    assert_eq!(
        app.loan_body(&admin.token, &loan_id).await["status"],
        "PENDING"
    );
    browser.quit().await;
}
