//! The SQLite limit for the load benchmark's payments: the statements the
//! service sends for one payment on the embedded database, run by a bare
//! sqlx loop with no HTTP, no JSON, no authentication and no ledger, on a
//! pool shaped like the service's (one writing connection, WAL,
//! `synchronous = NORMAL`, `BEGIN IMMEDIATE`).
//!
//!   sqlite_payment_limit DB_FILE CONNECTIONS SECONDS
//!
//! `CONNECTIONS` tasks each pay 0.01 on a random active loan of `DB_FILE`
//! (a database the service made and seeded) for `SECONDS`, then it prints
//! `RESULT <transactions per second> <transactions>`.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().collect();
    let [_, file, connections, seconds] = args.as_slice() else {
        return Err("usage: sqlite_payment_limit DB_FILE CONNECTIONS SECONDS".into());
    };
    let connections: usize = connections.parse()?;
    let duration = Duration::from_secs_f64(seconds.parse()?);
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{file}"))?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    let loans: Vec<(Uuid, Uuid)> =
        sqlx::query("SELECT id, user_id FROM loans WHERE status IN ('APPROVED', 'OVERDUE')")
            .fetch_all(&pool)
            .await?
            .iter()
            .map(|row| Ok((row.try_get("id")?, row.try_get("user_id")?)))
            .collect::<Result<_, sqlx::Error>>()?;
    if loans.is_empty() {
        return Err("no active loan in the database".into());
    }
    let loans = Arc::new(loans);
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..connections {
        let (pool, loans, done) = (pool.clone(), Arc::clone(&loans), Arc::clone(&done));
        tasks.push(tokio::spawn(async move {
            let mut next = task;
            while started.elapsed() < duration {
                next = (next * 7919 + 104_729) % loans.len();
                let (loan, user) = loans[next];
                pay_one_cent(&pool, loan, user).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), Failure>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let count = done.load(Ordering::Relaxed);
    println!(
        "RESULT {:.1} {count}",
        count as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One payment's statements, in the service's order: the loan, its unpaid
/// installments, the first of them and the loan updated, then the
/// payment, its allocation, the borrower's notice and the audit entry.
async fn pay_one_cent(pool: &SqlitePool, loan_id: Uuid, user_id: Uuid) -> Result<(), Failure> {
    let now: DateTime<Utc> = Utc::now();
    let mut connection = pool.acquire().await?;
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *connection)
        .await?;
    let loan = sqlx::query("SELECT * FROM loans WHERE id = ?")
        .bind(loan_id)
        .fetch_one(&mut *connection)
        .await?;
    let rows =
        sqlx::query("SELECT * FROM installments WHERE loan_id = ? AND status <> ? ORDER BY number")
            .bind(loan_id)
            .bind("PAID")
            .fetch_all(&mut *connection)
            .await?;
    let first = rows.first().ok_or("the loan has nothing left to pay")?;
    let installment: Uuid = first.try_get("id")?;
    let loan_status: String = loan.try_get("status")?;
    sqlx::query(
        "UPDATE installments SET due_date = ?, principal_minor = ?, interest_minor = ?, \
         penalty_minor = ?, principal_paid_minor = ?, interest_paid_minor = ?, \
         penalty_paid_minor = ?, status = ?, overdue_since = ?, penalty_applied_on = ?, \
         paid_at = ?, updated_at = ? WHERE id = ?",
    )
    .bind(first.try_get::<NaiveDate, _>("due_date")?)
    .bind(first.try_get::<i64, _>("principal_minor")?)
    .bind(first.try_get::<i64, _>("interest_minor")?)
    .bind(first.try_get::<i64, _>("penalty_minor")?)
    .bind(first.try_get::<i64, _>("principal_paid_minor")? + 1)
    .bind(first.try_get::<i64, _>("interest_paid_minor")?)
    .bind(first.try_get::<i64, _>("penalty_paid_minor")?)
    .bind(first.try_get::<String, _>("status")?)
    .bind(first.try_get::<Option<NaiveDate>, _>("overdue_since")?)
    .bind(first.try_get::<Option<NaiveDate>, _>("penalty_applied_on")?)
    .bind(None::<DateTime<Utc>>)
    .bind(now)
    .bind(installment)
    .execute(&mut *connection)
    .await?;
    sqlx::query(
        "UPDATE loans SET status = ?, total_paid_minor = ?, penalties_minor = ?, \
         penalties_paid_minor = ?, installment_minor = ?, total_payable_minor = ?, \
         principal_paid_minor = ?, interest_paid_minor = ?, next_due_date = ?, \
         paid_off_at = ?, updated_at = ? WHERE id = ?",
    )
    .bind(&loan_status)
    .bind(loan.try_get::<i64, _>("total_paid_minor")? + 1)
    .bind(loan.try_get::<i64, _>("penalties_minor")?)
    .bind(loan.try_get::<i64, _>("penalties_paid_minor")?)
    .bind(loan.try_get::<i64, _>("installment_minor")?)
    .bind(loan.try_get::<i64, _>("total_payable_minor")?)
    .bind(loan.try_get::<i64, _>("principal_paid_minor")? + 1)
    .bind(loan.try_get::<i64, _>("interest_paid_minor")?)
    .bind(loan.try_get::<Option<NaiveDate>, _>("next_due_date")?)
    .bind(None::<DateTime<Utc>>)
    .bind(now)
    .bind(loan_id)
    .execute(&mut *connection)
    .await?;
    let payment = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO payments (id, loan_id, user_id, recorded_by, amount_minor, principal_minor, \
         interest_minor, penalty_minor, currency, loan_status_after, loan_outstanding_after_minor, \
         idempotency_key, paid_at, created_at, value_date, status, excess, reversed_at, \
         reversed_by, reversal_reason, current_principal_minor, current_interest_minor, \
         current_penalty_minor) \
         VALUES (?, ?, ?, ?, 1, 1, 0, 0, 'USD', ?, ?, NULL, ?, ?, ?, 'POSTED', \
         'NEXT_INSTALLMENTS', NULL, NULL, NULL, 1, 0, 0)",
    )
    .bind(payment)
    .bind(loan_id)
    .bind(user_id)
    .bind(user_id)
    .bind(&loan_status)
    .bind(1_000_000_i64)
    .bind(now)
    .bind(now)
    .bind(now.date_naive())
    .execute(&mut *connection)
    .await?;
    sqlx::query(
        "INSERT INTO payment_allocations (payment_id, installment_id, principal_minor, \
         interest_minor, penalty_minor) VALUES (?, ?, 1, 0, 0)",
    )
    .bind(payment)
    .bind(installment)
    .execute(&mut *connection)
    .await?;
    sqlx::query(
        "INSERT INTO notifications (id, user_id, loan_id, kind, title, message, dedup_key, \
         read_at, email_enqueued_at, emailed_at, created_at) \
         VALUES (?, ?, ?, 'PAYMENT_RECEIVED', 'Payment received', ?, NULL, NULL, NULL, NULL, ?)",
    )
    .bind(Uuid::now_v7())
    .bind(user_id)
    .bind(loan_id)
    .bind("We received your payment of 0.01 USD. Your loan now has 9999.99 USD outstanding.")
    .bind(now)
    .execute(&mut *connection)
    .await?;
    sqlx::query(
        "INSERT INTO audit_logs (id, actor_id, action, entity_type, entity_id, details, ip, \
         request_id, created_at) VALUES (?, ?, 'PAYMENT_RECORDED', 'PAYMENT', ?, ?, '127.0.0.1', ?, ?)",
    )
    .bind(Uuid::now_v7())
    .bind(user_id)
    .bind(payment)
    .bind(serde_json::json!({"loanId": loan_id, "amount": "0.01", "principal": "0.01",
        "interest": "0.00", "penalty": "0.00", "loanStatus": loan_status,
        "loanOutstanding": "9999.99"}))
    .bind(Uuid::now_v7().to_string())
    .bind(now)
    .execute(&mut *connection)
    .await?;
    sqlx::query("COMMIT").execute(&mut *connection).await?;
    Ok(())
}
