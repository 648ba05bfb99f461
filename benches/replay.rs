//! Replaying a loan: a 360-month schedule with 360 payments, from the
//! approved schedule to today, timed over many runs. Pure computation, no
//! database. Target (issue 14): a median under 5 ms. Once a year a payment
//! also prepays 100.00 with `REDUCE_TERM` (issue 15), so the replay
//! reschedules the open installments 30 times.
//!
//! ```sh
//! cargo bench --bench replay
//! ```

use std::time::{Duration, Instant};

use chrono::{Days, Months, NaiveDate};
use loan_tracker::enums::ExcessPolicy;
use loan_tracker::ledger::LateFeeRule;
use loan_tracker::ledger::replay::{ApprovedInstallment, LoanTerms, Posting, replay};
use loan_tracker::money::{Money, Percent};
use loan_tracker::schedule::build_schedule;

const RUNS: usize = 200;
const TARGET: Duration = Duration::from_millis(5);

fn main() -> anyhow::Result<()> {
    let first_due = NaiveDate::from_ymd_opt(2000, 1, 15).ok_or_else(|| anyhow::anyhow!("date"))?;
    let rate = Percent::parse("12").map_err(|e| anyhow::anyhow!("{e}"))?;
    let schedule = build_schedule(Money::from_minor(100_000_000), rate, 360, first_due, 15)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let approved: Vec<ApprovedInstallment> = schedule
        .installments
        .iter()
        .map(ApprovedInstallment::from)
        .collect();
    // One payment a month, a few days late every third month (so fees are
    // charged), each a little under the installment.
    let postings: Vec<Posting> = (0..360u32)
        .map(|month| {
            let due = first_due
                .checked_add_months(Months::new(month))
                .unwrap_or(first_due);
            let late = if month % 3 == 0 { 5 } else { 0 };
            let (excess, extra) = if month % 12 == 6 {
                (ExcessPolicy::ReduceTerm, 10_000)
            } else {
                (ExcessPolicy::NextInstallments, 0)
            };
            Posting {
                id: uuid::Uuid::from_u128(u128::from(month)),
                amount: Money::from_minor(schedule.installment_amount.minor() - 100 + extra),
                value_date: due + Days::new(late),
                sequence: u64::from(month),
                excess,
            }
        })
        .collect();
    let today = first_due
        .checked_add_months(Months::new(361))
        .ok_or_else(|| anyhow::anyhow!("date"))?;
    let rule = LateFeeRule {
        percent: Percent::parse("5").map_err(|e| anyhow::anyhow!("{e}"))?,
        grace_days: 0,
    };
    let terms = LoanTerms::approved(&approved, rate);
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        let state = replay(&approved, terms, &postings, today, rule)?;
        times.push(started.elapsed());
        std::hint::black_box(state);
    }
    times.sort();
    let median = times[RUNS / 2];
    let p99 = times[RUNS * 99 / 100];
    println!(
        "replay of 360 installments and 360 payments: median {:.3} ms, p99 {:.3} ms over {RUNS} runs (target: median under {} ms) — {}",
        median.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0,
        TARGET.as_millis(),
        if median < TARGET { "met" } else { "MISSED" }
    );
    Ok(())
}
