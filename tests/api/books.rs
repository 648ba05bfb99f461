//! § The books: the journal posted with every money event, the invariants
//! that tie it to the loans at every moment, the trial balance, the journal
//! list and its CSV, and closing the books.
//!
//! Figures are the golden loan's (support.rs: 10 000.00 at 12 % over 12
//! months, approved 2026-01-15, first due 2026-02-15, 888.49 a month;
//! #1 = 100.00 interest + 788.49 principal; #2 = 92.12 + 796.37; the late
//! fee on an unpaid #1 is 5 % of 888.49 = 44.42).

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Method, Request};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::servicing::{id_of, moment, pay_with, reverse};
use crate::support::{TestApp, TestUser};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// One number from an SQL query (0 when it yields NULL).
async fn sum(app: &TestApp, sql: &str) -> i64 {
    let backend = app.state.db.write.get_database_backend();
    let row = app
        .state
        .db
        .write
        .query_one_raw(Statement::from_string(
            backend,
            format!("SELECT CAST(COALESCE(({sql}), 0) AS BIGINT) AS n"),
        ))
        .await
        .expect("query")
        .expect("a row");
    row.try_get("", "n").expect("a number")
}

pub(crate) async fn trial_balance(app: &TestApp, staff: &TestUser, query: &str) -> Value {
    let response = app
        .get(&format!("/accounting/trial-balance{query}"), &staff.token)
        .await;
    response.assert_status(200);
    response.body
}

/// `code → (debit, credit, balance)` of a trial balance.
fn accounts(balance: &Value) -> BTreeMap<String, (String, String, String)> {
    balance["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .map(|account| {
            let text = |field: &str| account[field].as_str().expect("money").to_owned();
            (
                text("code"),
                (text("debit"), text("credit"), text("balance")),
            )
        })
        .collect()
}

fn balance_of(balance: &Value, code: &str) -> String {
    accounts(balance)
        .get(code)
        .map(|(_, _, balance)| balance.clone())
        .expect("the account")
}

fn minor(text: &str) -> i64 {
    loan_tracker::money::Money::parse_decimal(text)
        .expect("money")
        .minor()
}

/// Every entry of the journal, oldest first, following the cursor.
pub(crate) async fn journal(app: &TestApp, staff: &TestUser, query: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let separator = if query.is_empty() { "?" } else { "&" };
        let path = match &cursor {
            Some(cursor) => format!("/accounting/journal{query}{separator}limit=2&cursor={cursor}"),
            None => format!("/accounting/journal{query}{separator}limit=2"),
        };
        let page = app.get(&path, &staff.token).await;
        page.assert_status(200);
        entries.extend(
            page.body["items"]
                .as_array()
                .expect("items")
                .iter()
                .cloned(),
        );
        match page.body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return entries,
        }
    }
}

fn kinds(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|entry| entry["kind"].as_str().expect("kind"))
        .collect()
}

/// `(account, debit, credit)` of an entry's lines.
fn lines(entry: &Value) -> Vec<(String, String, String)> {
    entry["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|line| {
            let text = |field: &str| line[field].as_str().expect("text").to_owned();
            (text("account"), text("debit"), text("credit"))
        })
        .collect()
}

fn line(account: &str, debit: &str, credit: &str) -> (String, String, String) {
    (account.to_owned(), debit.to_owned(), credit.to_owned())
}

/// The invariants of API.md § The journal, checked against the loans as
/// stored, the payments and the portfolio report (`verify_books` checks the
/// journal against a fresh replay too): every loan's journal agrees with it
/// (each entry balances; each payment's lines add up to its current
/// portions; what its entries leave in loans receivable is its unpaid
/// principal), and the accounts agree with the book — `1100` with the
/// principal outstanding, `4000` and `4100` with the interest and fees
/// collected, `1000` with the payments less the principal paid out — and
/// the daily totals the trial balance sums are the lines' sums.
pub(crate) async fn assert_books_agree(app: &TestApp) {
    let loan_ids: Vec<Uuid> = {
        use loan_tracker::db::entities::loan;
        use sea_orm::EntityTrait;
        loan::Entity::find()
            .all(&app.state.db.write)
            .await
            .expect("loans")
            .into_iter()
            .map(|loan| loan.id)
            .collect()
    };
    for loan_id in loan_ids {
        let differences = app.verify_journal(loan_id).await.expect("journal");
        assert!(differences.is_empty(), "loan {loan_id}: {differences:#?}");
    }
    let today = app.state.today();
    let balance = serde_json::to_value(
        loan_tracker::journal::service::trial_balance(&app.state.db.write, today, "USD")
            .await
            .expect("trial balance"),
    )
    .expect("json");
    assert_eq!(balance["totalDebit"], balance["totalCredit"], "{balance:#}");
    let report = serde_json::to_value(
        loan_tracker::reports::portfolio(&app.state.db.write, today, "USD")
            .await
            .expect("portfolio"),
    )
    .expect("json");
    assert_eq!(
        balance_of(&balance, "1100"),
        report["principalOutstanding"].as_str().expect("money"),
        "loans receivable is the principal outstanding"
    );
    assert_eq!(
        balance_of(&balance, "4000"),
        report["interestCollected"].as_str().expect("money")
    );
    assert_eq!(
        balance_of(&balance, "4100"),
        report["penaltiesCollected"].as_str().expect("money")
    );
    let received = sum(
        app,
        "SELECT SUM(amount_minor) FROM payments WHERE status = 'POSTED'",
    )
    .await;
    let paid_out = sum(
        app,
        "SELECT SUM(principal_minor) FROM loans WHERE approved_at IS NOT NULL",
    )
    .await;
    assert_eq!(minor(&balance_of(&balance, "1000")), received - paid_out);
    // An entry's line on an account is its column: a debit above zero, a
    // credit below.
    for account in [
        "cash",
        "loans_receivable",
        "interest_income",
        "fee_income",
        "recoveries",
        "loan_losses",
    ] {
        for (side, sign) in [("debit", ">"), ("credit", "<")] {
            let from_lines = sum(
                app,
                &format!(
                    "SELECT SUM(ABS({account}_minor)) FROM journal_entries \
                     WHERE {account}_minor {sign} 0"
                ),
            )
            .await;
            let from_totals = sum(
                app,
                &format!("SELECT SUM({account}_{side}_minor) FROM journal_day_totals"),
            )
            .await;
            assert_eq!(
                from_lines, from_totals,
                "{account} {side}: lines and totals"
            );
        }
    }
}

fn csv_request(path: &str, token: &str) -> Request<Body> {
    Request::builder()
        .method(Method::GET)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "text/csv")
        .body(Body::empty())
        .expect("request")
}

/// The body of a CSV answer, checking its status and type.
async fn csv(app: &TestApp, path: &str, token: &str) -> String {
    let response = app.send(csv_request(path, token)).await;
    response.assert_status(200);
    assert_eq!(response.header("content-type"), Some("text/csv"));
    response.text.clone()
}

// ---------------------------------------------------------------------------
// Posting
// ---------------------------------------------------------------------------

/// The walkthrough of the books: a loan, a payment after a late fee, a
/// backdated payment that shows the installment was paid in time (the fee
/// is waived, and the first payment's portions move: one ADJUSTMENT), a
/// reversal, and the trial balance after each.
#[tokio::test]
async fn every_money_event_is_booked_from_what_the_loan_now_says() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;

    let entries = journal(&app, &admin, &format!("?loanId={loan_id}")).await;
    assert_eq!(kinds(&entries), ["DISBURSEMENT"]);
    assert_eq!(entries[0]["valueDate"], "2026-01-15");
    assert_eq!(entries[0]["bookingDate"], "2026-01-15");
    assert_eq!(entries[0]["paymentId"], Value::Null);
    assert_eq!(
        lines(&entries[0]),
        [
            line("1000", "0.00", "10000.00"),
            line("1100", "10000.00", "0.00")
        ]
    );
    assert_books_agree(&app).await;

    // #1 is unpaid past its due date: 44.42 of fee, then the borrower pays
    // 888.49, which goes to the fee first.
    app.clock.set(moment("2026-02-20"));
    let late = app.pay(&borrower, loan_id, json!("888.49"), None).await;
    late.assert_status(201);
    let late_id = id_of(&late.body);
    let entries = journal(&app, &admin, &format!("?paymentId={late_id}")).await;
    assert_eq!(kinds(&entries), ["REPAYMENT"]);
    assert_eq!(entries[0]["valueDate"], "2026-02-20");
    assert_eq!(
        lines(&entries[0]),
        [
            line("1000", "888.49", "0.00"),
            line("1100", "0.00", "744.07"),
            line("4000", "0.00", "100.00"),
            line("4100", "0.00", "44.42"),
        ]
    );
    assert_books_agree(&app).await;

    // The bank's transfer of 15 February arrives: valued then, it paid #1
    // in time. The fee goes, and the later payment now pays #2 (92.12 of
    // interest, 796.37 of principal): the difference is booked.
    let on_time = pay_with(
        &app,
        &admin,
        loan_id,
        json!({ "amount": "888.49", "valueDate": "2026-02-15" }),
    )
    .await;
    on_time.assert_status(201);
    let on_time_id = id_of(&on_time.body);
    let entries = journal(&app, &admin, &format!("?loanId={loan_id}&from=2026-02-20")).await;
    assert_eq!(kinds(&entries), ["REPAYMENT", "REPAYMENT", "ADJUSTMENT"]);
    assert_eq!(entries[1]["paymentId"], json!(on_time_id));
    assert_eq!(entries[1]["valueDate"], "2026-02-15");
    assert_eq!(
        lines(&entries[1]),
        [
            line("1000", "888.49", "0.00"),
            line("1100", "0.00", "788.49"),
            line("4000", "0.00", "100.00"),
        ]
    );
    assert_eq!(entries[2]["paymentId"], json!(late_id));
    assert_eq!(entries[2]["valueDate"], "2026-02-20");
    assert_eq!(
        lines(&entries[2]),
        [
            line("1100", "0.00", "52.30"),
            line("4000", "7.88", "0.00"),
            line("4100", "44.42", "0.00"),
        ]
    );
    assert_books_agree(&app).await;

    // The later payment bounces: exactly what is booked for it now is taken
    // back, on the day of the reversal.
    app.clock.set(moment("2026-02-21"));
    reverse(&app, &admin, &late_id, "cheque returned")
        .await
        .assert_status(200);
    let entries = journal(&app, &admin, &format!("?paymentId={late_id}")).await;
    assert_eq!(kinds(&entries), ["REPAYMENT", "ADJUSTMENT", "REVERSAL"]);
    assert_eq!(entries[2]["bookingDate"], "2026-02-21");
    assert_eq!(entries[2]["valueDate"], "2026-02-21");
    assert_eq!(
        lines(&entries[2]),
        [
            line("1000", "0.00", "888.49"),
            line("1100", "796.37", "0.00"),
            line("4000", "92.12", "0.00"),
        ]
    );
    assert_books_agree(&app).await;

    let today = trial_balance(&app, &admin, "").await;
    assert_eq!(today["asOf"], "2026-02-21");
    assert_eq!(today["currency"], "USD");
    let expected: BTreeMap<String, (String, String, String)> = [
        ("1000", "1776.98", "10888.49", "-9111.51"),
        ("1100", "10796.37", "1584.86", "9211.51"),
        ("4000", "100.00", "200.00", "100.00"),
        ("4100", "44.42", "44.42", "0.00"),
        ("4200", "0.00", "0.00", "0.00"),
        ("5000", "0.00", "0.00", "0.00"),
    ]
    .into_iter()
    .map(|(code, d, c, b)| (code.to_owned(), (d.to_owned(), c.to_owned(), b.to_owned())))
    .collect();
    assert_eq!(accounts(&today), expected);
    assert_eq!(today["totalDebit"], "12717.77");
    assert_eq!(today["totalCredit"], "12717.77");
    let names: Vec<(&str, &str)> = today["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .map(|a| {
            (
                a["name"].as_str().expect("name"),
                a["type"].as_str().expect("type"),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("CASH", "ASSET"),
            ("LOANS_RECEIVABLE", "ASSET"),
            ("INTEREST_INCOME", "INCOME"),
            ("FEE_INCOME", "INCOME"),
            ("RECOVERIES", "INCOME"),
            ("LOAN_LOSSES", "EXPENSE"),
        ]
    );

    // As of a day before the payments: only the loan paid out.
    let before = trial_balance(&app, &admin, "?asOf=2026-02-19").await;
    assert_eq!(balance_of(&before, "1000"), "-10000.00");
    assert_eq!(balance_of(&before, "1100"), "10000.00");
    assert_eq!(before["totalDebit"], "10000.00");

    // The CSV forms.
    assert_eq!(
        csv(&app, "/accounting/trial-balance", &admin.token).await,
        "code,name,type,debit,credit,balance\n\
         1000,CASH,ASSET,1776.98,10888.49,-9111.51\n\
         1100,LOANS_RECEIVABLE,ASSET,10796.37,1584.86,9211.51\n\
         4000,INTEREST_INCOME,INCOME,100.00,200.00,100.00\n\
         4100,FEE_INCOME,INCOME,44.42,44.42,0.00\n\
         4200,RECOVERIES,INCOME,0.00,0.00,0.00\n\
         5000,LOAN_LOSSES,EXPENSE,0.00,0.00,0.00\n"
    );
    let journal_csv = csv(&app, "/accounting/journal", &admin.token).await;
    let rows: Vec<&str> = journal_csv.lines().collect();
    assert_eq!(
        rows[0],
        "entryId,kind,bookingDate,valueDate,loanId,paymentId,account,debit,credit"
    );
    assert_eq!(rows.len(), 1 + 2 + 4 + 3 + 3 + 3, "{journal_csv}");
    let disbursement = &journal(&app, &admin, "?kind=DISBURSEMENT").await[0];
    assert_eq!(
        rows[1],
        format!(
            "{},DISBURSEMENT,2026-01-15,2026-01-15,{loan_id},,1000,0.00,10000.00",
            disbursement["id"].as_str().expect("id")
        )
    );
    assert!(
        rows[13..]
            .iter()
            .all(|row| row.contains(",REVERSAL,2026-02-21,")),
        "{journal_csv}"
    );
    let filtered = csv(
        &app,
        &format!("/accounting/journal?paymentId={on_time_id}"),
        &admin.token,
    )
    .await;
    assert_eq!(filtered.lines().count(), 1 + 3);
}

#[tokio::test]
async fn a_settlement_and_prepayments_are_booked_like_any_payment() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    app.clock.set(moment("2026-02-15"));
    for excess in ["REDUCE_TERM", "REDUCE_INSTALLMENT"] {
        pay_with(
            &app,
            &borrower,
            loan_id,
            json!({ "amount": "1500.00", "excess": excess }),
        )
        .await
        .assert_status(201);
        assert_books_agree(&app).await;
    }
    app.clock.set(moment("2026-03-02"));
    let quote = app
        .get(&format!("/loans/{loan_id}/payoff"), &borrower.token)
        .await;
    quote.assert_status(200);
    let settled = app
        .post(
            &format!("/loans/{loan_id}/settle"),
            Some(&borrower.token),
            json!({ "amount": quote.body["total"] }),
        )
        .await;
    settled.assert_status(201);
    assert_books_agree(&app).await;
    // Settled: nothing is owed, loans receivable is empty.
    let balance = trial_balance(&app, &admin, "").await;
    assert_eq!(balance_of(&balance, "1100"), "0.00");
    // Reversing the settlement restores what it waived; the books follow.
    reverse(&app, &admin, &id_of(&settled.body), "settlement bounced")
        .await
        .assert_status(200);
    assert_books_agree(&app).await;
}

// ---------------------------------------------------------------------------
// Reading and closing the books
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_books_are_for_staff_and_closing_them_for_admins() {
    let app = TestApp::spawn().await;
    let (borrower, _admin, _) = app.golden_loan().await;
    let manager = app.manager().await;
    for path in [
        "/accounting/trial-balance",
        "/accounting/journal",
        "/accounting/close",
    ] {
        app.get(path, &borrower.token).await.assert_problem(403);
        app.get(path, &manager.token).await.assert_status(200);
    }
    app.post(
        "/accounting/close",
        Some(&manager.token),
        json!({ "through": "2026-01-01" }),
    )
    .await
    .assert_problem(403);
    app.post(
        "/accounting/close",
        Some(&borrower.token),
        json!({ "through": "2026-01-01" }),
    )
    .await
    .assert_problem(403);
}

#[tokio::test]
async fn the_trial_balance_is_never_ahead_of_the_calendar() {
    let app = TestApp::spawn().await;
    let (_, admin, _) = app.golden_loan().await;
    for query in [
        "?asOf=2026-01-16",
        "?asOf=tomorrow",
        "?asOf=2026-1-15",
        "?asOf=",
    ] {
        app.get(&format!("/accounting/trial-balance{query}"), &admin.token)
            .await
            .assert_invalid_fields(&["asOf"]);
    }
    // Before anything was booked: all six accounts, every figure zero.
    let empty = trial_balance(&app, &admin, "?asOf=2026-01-14").await;
    assert_eq!(accounts(&empty).len(), 6);
    assert!(
        accounts(&empty)
            .values()
            .all(|(d, c, b)| (d.as_str(), c.as_str(), b.as_str()) == ("0.00", "0.00", "0.00"))
    );
    assert_eq!(empty["totalDebit"], "0.00");
    for query in [
        "?kind=LOAN",
        "?loanId=7",
        "?from=2026-13-01",
        "?kind=REPAYMENT&kind=REVERSAL",
    ] {
        let field = query
            .trim_start_matches('?')
            .split('=')
            .next()
            .expect("name");
        app.get(&format!("/accounting/journal{query}"), &admin.token)
            .await
            .assert_invalid_fields(&[field]);
    }
}

#[tokio::test]
async fn closed_days_take_no_payment_but_reversals_book_today() {
    let app = TestApp::spawn().await;
    let (borrower, admin, loan_id) = app.golden_loan().await;
    app.clock.set(moment("2026-02-10"));
    let early = pay_with(
        &app,
        &admin,
        loan_id,
        json!({ "amount": "100.00", "valueDate": "2026-02-01" }),
    )
    .await;
    early.assert_status(201);

    let closing = app.get("/accounting/close", &admin.token).await;
    closing.assert_status(200);
    assert_eq!(closing.body, json!({ "closedThrough": null }));
    // Through today or later: refused.
    for day in ["2026-02-10", "2026-03-01"] {
        app.post(
            "/accounting/close",
            Some(&admin.token),
            json!({ "through": day }),
        )
        .await
        .assert_invalid_fields(&["through"]);
    }
    app.post(
        "/accounting/close",
        Some(&admin.token),
        json!({ "through": "2026-2-5" }),
    )
    .await
    .assert_invalid_fields(&["through"]);
    let closed = app
        .post(
            "/accounting/close",
            Some(&admin.token),
            json!({ "through": "2026-02-05" }),
        )
        .await;
    closed.assert_status(200);
    assert_eq!(closed.body, json!({ "closedThrough": "2026-02-05" }));
    let audit = app.audit_rows("BOOKS_CLOSED").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].entity_type, None);
    assert_eq!(audit[0].entity_id, None);
    assert_eq!(
        audit[0].details,
        json!({ "through": "2026-02-05", "previous": null })
    );

    // Valued on or before the closed day: refused, naming valueDate.
    for day in ["2026-02-05", "2026-01-20"] {
        let refused = pay_with(
            &app,
            &admin,
            loan_id,
            json!({ "amount": "50.00", "valueDate": day }),
        )
        .await;
        let problem = refused.assert_problem(409);
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|detail| detail.contains("valueDate")),
            "{problem}"
        );
    }
    // After it, and today: taken.
    pay_with(
        &app,
        &admin,
        loan_id,
        json!({ "amount": "50.00", "valueDate": "2026-02-06" }),
    )
    .await
    .assert_status(201);
    app.pay(&borrower, loan_id, json!("25.00"), None)
        .await
        .assert_status(201);
    // Reversing the payment valued in the closed period is allowed; its
    // reversal is booked today.
    reverse(&app, &admin, &id_of(&early.body), "wrong loan")
        .await
        .assert_status(200);
    let reversal = journal(&app, &admin, "?kind=REVERSAL").await;
    assert_eq!(reversal.len(), 1);
    assert_eq!(reversal[0]["bookingDate"], "2026-02-10");
    assert_eq!(reversal[0]["valueDate"], "2026-02-10");
    assert_books_agree(&app).await;

    // Never reopened; the same day again changes nothing.
    app.post(
        "/accounting/close",
        Some(&admin.token),
        json!({ "through": "2026-02-04" }),
    )
    .await
    .assert_problem(409);
    let again = app
        .post(
            "/accounting/close",
            Some(&admin.token),
            json!({ "through": "2026-02-05" }),
        )
        .await;
    again.assert_status(200);
    assert_eq!(again.body, json!({ "closedThrough": "2026-02-05" }));
    assert_eq!(app.audit_rows("BOOKS_CLOSED").await.len(), 1);
    let later = app
        .post(
            "/accounting/close",
            Some(&admin.token),
            json!({ "through": "2026-02-08" }),
        )
        .await;
    later.assert_status(200);
    let audit = app.audit_rows("BOOKS_CLOSED").await;
    assert_eq!(audit.len(), 2);
    assert!(
        audit
            .iter()
            .any(|row| row.details == json!({ "through": "2026-02-08", "previous": "2026-02-05" }))
    );
}

// ---------------------------------------------------------------------------
// The invariants, after every step of random histories
// ---------------------------------------------------------------------------

mod random_histories {
    use proptest::prelude::*;
    use serde_json::json;

    use super::assert_books_agree;
    use crate::servicing::{id_of, moment, pay_with, reverse};
    use crate::support::TestApp;

    #[derive(Clone, Debug)]
    enum Step {
        /// Days pass (sometimes the daily job runs).
        Wait(u64, bool),
        /// A payment valued today, with an excess policy.
        Pay(usize, i64, &'static str),
        /// A payment valued some days back.
        PayBackdated(usize, i64, u64),
        /// The n-th payment so far reversed.
        Reverse(usize),
        /// A loan settled at today's quote.
        Settle(usize),
    }

    fn steps() -> impl Strategy<Value = Step> {
        let policy = prop_oneof![
            Just("NEXT_INSTALLMENTS"),
            Just("REDUCE_TERM"),
            Just("REDUCE_INSTALLMENT")
        ];
        prop_oneof![
            ((1u64..40), any::<bool>()).prop_map(|(days, job)| Step::Wait(days, job)),
            ((0usize..2), (100i64..150_000), policy).prop_map(|(l, a, p)| Step::Pay(l, a, p)),
            ((0usize..2), (100i64..150_000), (1u64..45))
                .prop_map(|(l, a, d)| Step::PayBackdated(l, a, d)),
            (0usize..8).prop_map(Step::Reverse),
            (0usize..2).prop_map(Step::Settle),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 6,
            max_shrink_iters: 16,
            ..ProptestConfig::default()
        })]

        /// Random payments, backdated payments, reversals, prepayments (all
        /// three policies) and settlements on two random loans; after every
        /// step, accepted or refused, the journal agrees with the loans.
        #[test]
        fn the_journal_agrees_with_the_loans_after_every_step(
            loans in prop::collection::vec(((50_000i64..2_000_000), (0u32..25), (2u32..8)), 2),
            history in prop::collection::vec(steps(), 1..10),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(run(loans, history));
        }
    }

    async fn run(loans: Vec<(i64, u32, u32)>, history: Vec<Step>) {
        let app = TestApp::spawn().await;
        let borrower = app.register("borrower").await;
        let admin = app.admin().await;
        let mut loan_ids = Vec::new();
        for (principal, rate, term) in loans {
            let amount = loan_tracker::money::Money::from_minor(principal).to_string();
            let loan_id = app.apply(&borrower, &amount, term).await;
            app.approve(
                &admin,
                loan_id,
                Some(
                    json!({ "annualInterestRate": rate.to_string(), "firstDueDate": "2026-02-15" }),
                ),
            )
            .await;
            loan_ids.push(loan_id);
        }
        let mut today = chrono::NaiveDate::from_ymd_opt(2026, 1, 15).expect("date");
        let mut payments: Vec<String> = Vec::new();
        for step in history {
            let money = |minor: i64| loan_tracker::money::Money::from_minor(minor).to_string();
            match step {
                Step::Wait(days, job) => {
                    today = today + chrono::Days::new(days);
                    app.clock.set(moment(&today.to_string()));
                    if job {
                        app.run_job(&admin, "overdue-check", &today.to_string())
                            .await;
                    }
                }
                Step::Pay(loan, amount, excess) => {
                    let paid = pay_with(
                        &app,
                        &admin,
                        loan_ids[loan],
                        json!({ "amount": money(amount), "excess": excess }),
                    )
                    .await;
                    if paid.status == 201 {
                        payments.push(id_of(&paid.body));
                    }
                }
                Step::PayBackdated(loan, amount, days) => {
                    let day = (today - chrono::Days::new(days))
                        .max(chrono::NaiveDate::from_ymd_opt(2026, 1, 15).expect("date"));
                    let paid = pay_with(
                        &app,
                        &admin,
                        loan_ids[loan],
                        json!({ "amount": money(amount), "valueDate": day.to_string() }),
                    )
                    .await;
                    if paid.status == 201 {
                        payments.push(id_of(&paid.body));
                    }
                }
                Step::Reverse(index) => {
                    if let Some(id) = payments.get(index) {
                        reverse(&app, &admin, id, "reversed at random").await;
                    }
                }
                Step::Settle(loan) => {
                    let quote = app
                        .get(&format!("/loans/{}/payoff", loan_ids[loan]), &admin.token)
                        .await;
                    if quote.status == 200 {
                        let settled = app
                            .post(
                                &format!("/loans/{}/settle", loan_ids[loan]),
                                Some(&admin.token),
                                json!({ "amount": quote.body["total"] }),
                            )
                            .await;
                        if settled.status == 201 {
                            payments.push(id_of(&settled.body));
                        }
                    }
                }
            }
            assert_books_agree(&app).await;
        }
    }
}

// ---------------------------------------------------------------------------
// Upgrading
// ---------------------------------------------------------------------------

/// A database of an earlier version (a loan approved, one payment, both
/// before the journal existed) gains, at the upgrade, a journal that
/// agrees with it: the loan paid out on its approval date and the payment
/// as it stands on its value date, both booked on the upgrade day.
#[tokio::test]
async fn an_existing_book_gains_a_journal_that_agrees_with_it() {
    let (borrower, loan_id, payment_id) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let app = TestApp::builder()
        .env("TIMEZONE", "America/New_York")
        .upgrading_from(
            2,
            crate::servicing::earlier_version_rows(borrower, loan_id, payment_id),
        )
        .build()
        .await;
    let admin = app.admin().await;
    let entries = journal(&app, &admin, "").await;
    assert_eq!(kinds(&entries), ["DISBURSEMENT", "REPAYMENT"]);
    // Approved 2025-12-10T09:00Z, 04:00 in New York.
    assert_eq!(entries[0]["valueDate"], "2025-12-10");
    // Started on the upgrade day, 2026-01-15 in New York.
    assert_eq!(entries[0]["bookingDate"], "2026-01-15");
    assert_eq!(
        lines(&entries[0]),
        [
            line("1000", "0.00", "300.00"),
            line("1100", "300.00", "0.00")
        ]
    );
    assert_eq!(entries[1]["paymentId"], json!(payment_id));
    assert_eq!(entries[1]["valueDate"], "2026-01-05");
    assert_eq!(
        lines(&entries[1]),
        [
            line("1000", "100.00", "0.00"),
            line("1100", "0.00", "100.00")
        ]
    );
    assert_books_agree(&app).await;
    assert_eq!(
        app.verify_books(loan_id).await.expect("books"),
        Vec::<String>::new()
    );
    // Started once: a restart on the same database books nothing again.
    let again = app.second_instance().await;
    drop(again);
    assert_eq!(journal(&app, &admin, "").await.len(), 2);
}

/// A database of the first version with the books (eight migrations),
/// whose journal kept its lines and its daily totals in tables of their
/// own, keeps the same journal when its lines move into the entries: the
/// same entries with the same lines, and the same trial balance.
#[tokio::test]
async fn the_first_books_journal_moves_into_its_entries_unchanged() {
    let (borrower, loan_id, payment_id) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let (paid_out, repaid) = (Uuid::now_v7(), Uuid::now_v7());
    let mut rows = crate::servicing::earlier_version_rows(borrower, loan_id, payment_id);
    let id = crate::servicing::uuid_literal;
    let at = "'2026-01-14T15:00:00+00:00'";
    rows.extend([
        format!(
            "INSERT INTO journal_entries (id, kind, loan_id, payment_id, booking_date, value_date, \
             posted_at, currency) VALUES ({}, 'DISBURSEMENT', {}, NULL, '2026-01-14', \
             '2025-12-10', {at}, 'USD'), ({}, 'REPAYMENT', {}, {}, '2026-01-14', '2026-01-05', \
             {at}, 'USD')",
            id(paid_out),
            id(loan_id),
            id(repaid),
            id(loan_id),
            id(payment_id)
        ),
        format!(
            "INSERT INTO journal_lines (entry_id, account, debit_minor, credit_minor) VALUES \
             ({p}, '1000', 0, 30000), ({p}, '1100', 30000, 0), \
             ({r}, '1000', 10000, 0), ({r}, '1100', 0, 10000)",
            p = id(paid_out),
            r = id(repaid)
        ),
        // The two entries were posted by transactions in different slots.
        "INSERT INTO journal_totals (booking_date, account, slot, debit_minor, credit_minor) \
         VALUES ('2026-01-14', '1000', 3, 0, 30000), ('2026-01-14', '1100', 3, 30000, 0), \
         ('2026-01-14', '1000', 5, 10000, 0), ('2026-01-14', '1100', 5, 0, 10000)"
            .to_owned(),
        "UPDATE books SET journal_since = '2026-01-14'".to_owned(),
        // What the later migrations keep beside the rows of version two.
        format!(
            "UPDATE payments SET current_principal_minor = 10000 WHERE id = {}",
            id(payment_id)
        ),
        format!(
            "UPDATE loans SET principal_paid_minor = 10000 WHERE id = {}",
            id(loan_id)
        ),
    ]);
    let app = TestApp::builder()
        .env("TIMEZONE", "America/New_York")
        .upgrading_from(8, rows)
        .build()
        .await;
    let admin = app.admin().await;
    let entries = journal(&app, &admin, "").await;
    assert_eq!(kinds(&entries), ["DISBURSEMENT", "REPAYMENT"]);
    assert_eq!(entries[0]["id"], json!(paid_out));
    assert_eq!(
        lines(&entries[0]),
        [
            line("1000", "0.00", "300.00"),
            line("1100", "300.00", "0.00")
        ]
    );
    assert_eq!(entries[1]["id"], json!(repaid));
    assert_eq!(entries[1]["paymentId"], json!(payment_id));
    assert_eq!(
        lines(&entries[1]),
        [
            line("1000", "100.00", "0.00"),
            line("1100", "0.00", "100.00")
        ]
    );
    let balance = trial_balance(&app, &admin, "?asOf=2026-01-14").await;
    let mut expected = BTreeMap::new();
    for (code, debit, credit, balance) in [
        ("1000", "100.00", "300.00", "-200.00"),
        ("1100", "300.00", "100.00", "200.00"),
        ("4000", "0.00", "0.00", "0.00"),
        ("4100", "0.00", "0.00", "0.00"),
        ("4200", "0.00", "0.00", "0.00"),
        ("5000", "0.00", "0.00", "0.00"),
    ] {
        expected.insert(
            code.to_owned(),
            (debit.to_owned(), credit.to_owned(), balance.to_owned()),
        );
    }
    assert_eq!(accounts(&balance), expected);
    let before = trial_balance(&app, &admin, "?asOf=2026-01-13").await;
    assert_eq!(before["totalDebit"], "0.00");
    assert_books_agree(&app).await;
    // An entry that does not balance is refused by the database itself.
    let unbalanced = app
        .state
        .db
        .write
        .execute_unprepared(&format!(
            "INSERT INTO journal_entries (id, kind, loan_id, booking_date, value_date, posted_at, \
             currency, cash_minor, loans_receivable_minor) VALUES ({}, 'ADJUSTMENT', {}, \
             '2026-01-15', '2026-01-15', {at}, 'USD', 100, -99)",
            id(Uuid::now_v7()),
            id(loan_id)
        ))
        .await;
    assert!(unbalanced.is_err(), "an unbalanced entry was stored");
}

/// A slot's totals row for a day is made by the first posting of the day
/// in that slot and added to by the next ones: those are a plain update,
/// sent last in their batch, and the row is made (an upsert) only when
/// the update found none. Each round here posts an entry of 1.25 in the
/// same slot of a day no other posting used.
#[tokio::test]
async fn a_slots_totals_row_is_made_by_its_first_posting_then_added_to() {
    use chrono::{NaiveDate, Utc};
    use loan_tracker::db::batch::WriteBatch;
    use loan_tracker::enums::EntryKind;
    use loan_tracker::journal::accounts::Account;
    use loan_tracker::journal::posting::{Line, NewEntry};
    use loan_tracker::journal::store::{self, EntryToPost, PostingDay};
    use loan_tracker::money::Money;
    use sea_orm::TransactionTrait;

    let app = TestApp::spawn().await;
    let (_, _, loan_id) = app.golden_loan().await;
    let day = NaiveDate::from_ymd_opt(2031, 3, 3).expect("date");
    let the_day = "booking_date = '2031-03-03'";
    for round in 1..=3 {
        let transaction = app.state.db.write.begin().await.expect("begin");
        let mut batch = WriteBatch::for_connection(&transaction);
        let entry = NewEntry {
            kind: EntryKind::Adjustment,
            loan_id,
            payment_id: None,
            value_date: day,
            lines: [
                (Account::Cash, Money::from_minor(125)),
                (Account::LoansReceivable, Money::from_minor(-125)),
            ]
            .into_iter()
            .filter_map(|(account, net)| Line::of_signed(account, net))
            .collect(),
        };
        store::push(
            &mut batch,
            vec![EntryToPost {
                entry,
                currency: "USD".to_owned(),
            }],
            PostingDay {
                booking_date: day,
                posted_at: Utc::now(),
                slot: 5,
            },
        );
        batch.execute(&transaction).await.expect("posted");
        transaction.commit().await.expect("commit");

        let rows = sum(
            &app,
            &format!("SELECT COUNT(*) FROM journal_day_totals WHERE {the_day}"),
        )
        .await;
        assert_eq!(rows, 1, "round {round}: one row for the day's slot");
        for (column, expected) in [
            ("cash_debit_minor", 125 * round),
            ("cash_credit_minor", 0),
            ("loans_receivable_debit_minor", 0),
            ("loans_receivable_credit_minor", 125 * round),
            ("interest_income_credit_minor", 0),
        ] {
            let found = sum(
                &app,
                &format!("SELECT {column} FROM journal_day_totals WHERE {the_day} AND slot = 5"),
            )
            .await;
            assert_eq!(found, expected, "round {round}: {column}");
        }
    }
    let entries = sum(
        &app,
        &format!("SELECT COUNT(*) FROM journal_entries WHERE {the_day}"),
    )
    .await;
    assert_eq!(entries, 3);
}

/// A batch binding more values than one PostgreSQL statement may (here
/// 5 000 entries of 14 values each) is sent statement by statement
/// instead of as one, and still ends with its totals update, whose count
/// decides whether the day's row must be made: the first batch makes it,
/// the second adds to it.
#[tokio::test]
async fn a_batch_too_large_for_one_statement_is_written_whole_one_statement_at_a_time() {
    use chrono::{NaiveDate, Utc};
    use loan_tracker::db::batch::WriteBatch;
    use loan_tracker::enums::EntryKind;
    use loan_tracker::journal::accounts::Account;
    use loan_tracker::journal::posting::{Line, NewEntry};
    use loan_tracker::journal::store::{self, EntryToPost, PostingDay};
    use loan_tracker::money::Money;
    use sea_orm::TransactionTrait;

    const ENTRIES: i64 = 5_000;
    let app = TestApp::spawn().await;
    let (_, _, loan_id) = app.golden_loan().await;
    let day = NaiveDate::from_ymd_opt(2031, 4, 4).expect("date");
    let the_day = "booking_date = '2031-04-04'";
    for round in 1..=2 {
        let transaction = app.state.db.write.begin().await.expect("begin");
        let mut batch = WriteBatch::for_connection(&transaction);
        let entries = (0..ENTRIES)
            .map(|_| EntryToPost {
                entry: NewEntry {
                    kind: EntryKind::Adjustment,
                    loan_id,
                    payment_id: None,
                    value_date: day,
                    lines: [
                        (Account::Cash, Money::from_minor(2)),
                        (Account::LoansReceivable, Money::from_minor(-2)),
                    ]
                    .into_iter()
                    .filter_map(|(account, net)| Line::of_signed(account, net))
                    .collect(),
                },
                currency: "USD".to_owned(),
            })
            .collect();
        store::push(
            &mut batch,
            entries,
            PostingDay {
                booking_date: day,
                posted_at: Utc::now(),
                slot: 7,
            },
        );
        batch.execute(&transaction).await.expect("posted");
        transaction.commit().await.expect("commit");

        let stored = sum(
            &app,
            &format!("SELECT COUNT(*) FROM journal_entries WHERE {the_day}"),
        )
        .await;
        assert_eq!(stored, ENTRIES * round, "round {round}: entries");
        let rows = sum(
            &app,
            &format!("SELECT COUNT(*) FROM journal_day_totals WHERE {the_day}"),
        )
        .await;
        assert_eq!(rows, 1, "round {round}: one row for the day's slot");
        for (column, expected) in [
            ("cash_debit_minor", 2 * ENTRIES * round),
            ("loans_receivable_credit_minor", 2 * ENTRIES * round),
            ("cash_credit_minor", 0),
        ] {
            let found = sum(
                &app,
                &format!("SELECT {column} FROM journal_day_totals WHERE {the_day} AND slot = 7"),
            )
            .await;
            assert_eq!(found, expected, "round {round}: {column}");
        }
    }
}
