//! `overdue-check` benchmark on PostgreSQL: about a million installments,
//! about 100 000 of them past due and not yet marked, then the job is run
//! for today. Reports wall time and the process's peak resident memory.
//!
//! ```sh
//! cargo bench --bench jobs
//! BENCH_DATABASE_URL=postgres://… cargo bench --bench jobs
//! ```

use std::time::{Duration, Instant};

use loan_tracker::jobs::{JobName, Trigger};

const LOANS: i64 = 83_334;
const TERM: i64 = 12;
const TARGET_TIME: Duration = Duration::from_secs(60);
const TARGET_MEMORY_MB: f64 = 200.0;

mod common;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::with_scratch_state(&[("RUST_LOG", "warn")], run).await
}

async fn run(state: loan_tracker::app::AppState) -> anyhow::Result<()> {
    let started = Instant::now();
    let statements = [
        common::BULK_USERS.to_owned(),
        format!(
            "INSERT INTO loans (id, user_id, status, currency, principal_minor, annual_interest_rate, term_months, \
             installment_minor, total_payable_minor, first_due_date, next_due_date) \
             SELECT gen_random_uuid(), u.id, 'APPROVED', 'USD', 1200000, '0.0', {TERM}, 100000, 1200000, \
                    CURRENT_DATE - (g % 45), CURRENT_DATE - (g % 45) \
             FROM generate_series(1, {LOANS}) g \
             JOIN LATERAL (SELECT id FROM users WHERE username = 'user' || (1 + g % 10000)) u ON true"
        ),
        format!(
            "INSERT INTO installments (id, loan_id, user_id, number, due_date, principal_minor, interest_minor, status) \
             SELECT gen_random_uuid(), l.id, l.user_id, n, \
                    (l.first_due_date + ((n - 1) || ' months')::interval)::date, 100000, 0, 'PENDING' \
             FROM loans l CROSS JOIN generate_series(1, {TERM}) n"
        ),
        "ANALYZE".to_owned(),
    ];
    common::execute_all(&state, &statements).await?;
    let [total, overdue] = common::counts(
        &state,
        "SELECT (SELECT COUNT(*) FROM installments) AS total, \
         (SELECT COUNT(*) FROM installments WHERE status <> 'PAID' AND due_date < CURRENT_DATE) AS overdue",
        &["total", "overdue"],
    )
    .await?[..] else {
        anyhow::bail!("no counts");
    };
    println!(
        "loaded {total} installments, {overdue} past due and unmarked, in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let before_mb = common::peak_rss_mb();
    let today = state.today();
    let started = Instant::now();
    let report =
        loan_tracker::jobs::run(&state, JobName::OverdueCheck, today, Trigger::Cli, None).await?;
    let first = started.elapsed();
    let peak_mb = common::peak_rss_mb();
    let started = Instant::now();
    let rerun =
        loan_tracker::jobs::run(&state, JobName::OverdueCheck, today, Trigger::Cli, None).await?;
    let second = started.elapsed();

    println!();
    println!(
        "| overdue-check (PostgreSQL, {total} installments) | wall time | peak RSS of the process | target |"
    );
    println!("|---|---|---|---|");
    println!(
        "| first run: {} marked, {} fees, {} loans, {} failed | {:.1} s | {:.0} MB (was {:.0} MB before the run) | < 60 s and < 200 MB: {} |",
        report.count("installmentsMarkedOverdue"),
        report.count("penaltiesApplied"),
        report.count("loansMarkedOverdue"),
        report.count("failed"),
        first.as_secs_f64(),
        peak_mb,
        before_mb,
        if first < TARGET_TIME && peak_mb < TARGET_MEMORY_MB {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "| second run, same day: {} marked, {} fees | {:.1} s | {:.0} MB | |",
        rerun.count("installmentsMarkedOverdue"),
        rerun.count("penaltiesApplied"),
        second.as_secs_f64(),
        common::peak_rss_mb(),
    );
    Ok(())
}
