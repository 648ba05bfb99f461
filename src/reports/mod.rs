//! The portfolio report (API.md § Delinquency and the portfolio): how much
//! of the book is late, and how late.
//!
//! Every figure is an aggregate over the loans table alone, which keeps
//! what the report needs beside each loan: its oldest unpaid due date
//! (`next_due_date`) and the principal, interest and penalties its
//! payments paid, all moved in the transaction of every operation that
//! moves them. So the report is one pass over the loans, never over their
//! installments or payments, and never loads a loan into memory.

pub mod handlers;

use chrono::NaiveDate;
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, IsolationLevel,
    Statement, TransactionTrait, Value,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::enums::{DelinquencyBucket, LoanStatus};
use crate::money::{Money, divide_half_even};

/// Loans per status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct LoansByStatus {
    #[serde(rename = "PENDING")]
    pub pending: i64,
    #[serde(rename = "APPROVED")]
    pub approved: i64,
    #[serde(rename = "OVERDUE")]
    pub overdue: i64,
    #[serde(rename = "PAID")]
    pub paid: i64,
    #[serde(rename = "REJECTED")]
    pub rejected: i64,
    #[serde(rename = "CANCELLED")]
    pub cancelled: i64,
}

impl LoansByStatus {
    fn count(&mut self, status: LoanStatus, loans: i64) {
        let slot = match status {
            LoanStatus::Pending => &mut self.pending,
            LoanStatus::Approved => &mut self.approved,
            LoanStatus::Overdue => &mut self.overdue,
            LoanStatus::Paid => &mut self.paid,
            LoanStatus::Rejected => &mut self.rejected,
            LoanStatus::Cancelled => &mut self.cancelled,
        };
        *slot += loans;
    }
}

/// The APPROVED/OVERDUE loans in one delinquency bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketRow {
    pub bucket: DelinquencyBucket,
    pub loans: i64,
    /// Their principal not yet repaid.
    pub principal_outstanding: Money,
}

/// The book as of a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortfolioReport {
    pub as_of: NaiveDate,
    pub currency: String,
    pub loans_by_status: LoansByStatus,
    /// Σ principal of every loan ever approved.
    pub principal_disbursed: Money,
    /// Σ principal not yet repaid of APPROVED/OVERDUE loans.
    pub principal_outstanding: Money,
    /// Σ interest portions of posted payments.
    pub interest_collected: Money,
    /// Σ penalty portions of posted payments.
    pub penalties_collected: Money,
    /// The five buckets, `CURRENT` to `91+`.
    pub buckets: Vec<BucketRow>,
    /// Principal outstanding of loans more than 30 days past due ÷
    /// `principalOutstanding`, 4 decimals, half-even (`"0.0000"` when
    /// nothing is outstanding).
    #[schema(example = "0.0123")]
    pub par30: String,
    /// The same for more than 90 days.
    #[schema(example = "0.0045")]
    pub par90: String,
}

/// `?1`, `?2`, … on SQLite and `$1`, `$2`, … on PostgreSQL.
fn placeholders(backend: DatabaseBackend, sql: &str) -> String {
    let mark = if backend == DatabaseBackend::Postgres {
        "$"
    } else {
        "?"
    };
    sql.replace("{p", mark).replace('}', "")
}

/// Loans and their principal outstanding per bucket on `today`, in bucket
/// order (every bucket, empty ones with zeros).
pub async fn bucket_rows(
    connection: &impl ConnectionTrait,
    today: NaiveDate,
) -> Result<Vec<BucketRow>, DbErr> {
    let backend = connection.get_database_backend();
    let (bucket, dates) = crate::ledger::delinquency::bucket_sql(today);
    let sql = placeholders(
        backend,
        &format!(
            "SELECT {bucket} AS bucket, \
               COUNT(*) AS loans, \
               CAST(COALESCE(SUM(principal_minor - principal_paid_minor), 0) AS BIGINT) AS principal \
             FROM loans WHERE {active} GROUP BY 1",
            active = crate::db::entities::loan::active_sql(),
        ),
    );
    let values: Vec<Value> = dates.into_iter().map(Value::from).collect();
    let rows = connection
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let mut buckets: Vec<BucketRow> = DelinquencyBucket::ALL
        .iter()
        .map(|bucket| BucketRow {
            bucket: *bucket,
            loans: 0,
            principal_outstanding: Money::ZERO,
        })
        .collect();
    for row in rows {
        let name: String = row.try_get("", "bucket")?;
        let Some(slot) = buckets.iter_mut().find(|slot| slot.bucket.as_str() == name) else {
            continue;
        };
        slot.loans = row.try_get("", "loans")?;
        slot.principal_outstanding = Money::from_minor(row.try_get("", "principal")?);
    }
    Ok(buckets)
}

/// The report on `today`, its two statements (per status, per bucket;
/// nothing loaded per loan) reading one snapshot of the book: a payment
/// committing between them cannot show in one figure and not the other.
pub async fn portfolio(
    database: &DatabaseConnection,
    today: NaiveDate,
    currency: &str,
) -> Result<PortfolioReport, DbErr> {
    // SQLite's read transaction is a snapshot from its first read;
    // PostgreSQL needs REPEATABLE READ for one.
    let transaction = if database.get_database_backend() == DatabaseBackend::Postgres {
        database
            .begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await?
    } else {
        database.begin().await?
    };
    let report = figures(&transaction, today, currency).await;
    transaction.rollback().await?;
    report
}

async fn figures(
    connection: &impl ConnectionTrait,
    today: NaiveDate,
    currency: &str,
) -> Result<PortfolioReport, DbErr> {
    let backend = connection.get_database_backend();
    let rows = connection
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT status, COUNT(*) AS loans, \
               CAST(COALESCE(SUM(CASE WHEN approved_at IS NOT NULL THEN principal_minor ELSE 0 END), 0) AS BIGINT) AS disbursed, \
               CAST(COALESCE(SUM(interest_paid_minor), 0) AS BIGINT) AS interest, \
               CAST(COALESCE(SUM(penalties_paid_minor), 0) AS BIGINT) AS penalties \
             FROM loans GROUP BY status",
        ))
        .await?;
    let mut loans_by_status = LoansByStatus::default();
    let (mut disbursed, mut interest, mut penalties) = (0i64, 0i64, 0i64);
    for row in rows {
        let status: String = row.try_get("", "status")?;
        let Some(status) = LoanStatus::parse(&status) else {
            continue;
        };
        loans_by_status.count(status, row.try_get("", "loans")?);
        disbursed += row.try_get::<i64>("", "disbursed")?;
        interest += row.try_get::<i64>("", "interest")?;
        penalties += row.try_get::<i64>("", "penalties")?;
    }
    let buckets = bucket_rows(connection, today).await?;
    let outstanding: Money = buckets.iter().map(|row| row.principal_outstanding).sum();
    let later_than = |buckets_over: &[DelinquencyBucket]| -> Money {
        buckets
            .iter()
            .filter(|row| buckets_over.contains(&row.bucket))
            .map(|row| row.principal_outstanding)
            .sum()
    };
    let par30 = later_than(&[
        DelinquencyBucket::Days31To60,
        DelinquencyBucket::Days61To90,
        DelinquencyBucket::Days91Plus,
    ]);
    let par90 = later_than(&[DelinquencyBucket::Days91Plus]);
    Ok(PortfolioReport {
        as_of: today,
        currency: currency.to_owned(),
        loans_by_status,
        principal_disbursed: Money::from_minor(disbursed),
        principal_outstanding: outstanding,
        interest_collected: Money::from_minor(interest),
        penalties_collected: Money::from_minor(penalties),
        buckets,
        par30: ratio(par30, outstanding),
        par90: ratio(par90, outstanding),
    })
}

/// `part ÷ whole` with 4 decimals: `part × 10 000 ÷ whole` in minor units,
/// rounded half-even once; `"0.0000"` when `whole` is zero.
pub fn ratio(part: Money, whole: Money) -> String {
    const TEN_THOUSANDTHS: i128 = 10_000;
    let scaled = i128::from(part.minor())
        .checked_mul(TEN_THOUSANDTHS)
        .and_then(|numerator| divide_half_even(numerator, i128::from(whole.minor())));
    match scaled {
        Some(value) if whole.is_positive() => format!(
            "{}{}.{:04}",
            if value < 0 { "-" } else { "" },
            value.abs() / TEN_THOUSANDTHS,
            value.abs() % TEN_THOUSANDTHS
        ),
        _ => "0.0000".to_owned(),
    }
}

/// The bucket rows as CSV: a header, then one line per bucket, money with
/// two decimals.
pub fn csv(report: &PortfolioReport) -> String {
    let mut text = String::from("bucket,loans,principalOutstanding\n");
    for row in &report.buckets {
        text.push_str(&format!(
            "{},{},{}\n",
            row.bucket.as_str(),
            row.loans,
            row.principal_outstanding
        ));
    }
    text
}

/// Sets the `loans_by_bucket` and `principal_outstanding_minor` gauges.
pub fn publish(buckets: &[BucketRow]) {
    for row in buckets {
        metrics::gauge!("loans_by_bucket", "bucket" => row.bucket.as_str()).set(row.loans as f64);
        metrics::gauge!("principal_outstanding_minor", "bucket" => row.bucket.as_str())
            .set(row.principal_outstanding.minor() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_have_four_decimals_rounded_half_even() {
        let money = |minor| Money::from_minor(minor);
        assert_eq!(ratio(money(0), money(0)), "0.0000");
        assert_eq!(ratio(money(5), money(0)), "0.0000");
        assert_eq!(ratio(money(5_000), money(8_000)), "0.6250");
        assert_eq!(ratio(money(8_000), money(8_000)), "1.0000");
        // 1 ÷ 3 = 0.33333… ; 0.00005 exactly rounds to even (0.0000), and
        // 0.00015 to 0.0002.
        assert_eq!(ratio(money(1), money(3)), "0.3333");
        assert_eq!(ratio(money(1), money(20_000)), "0.0000");
        assert_eq!(ratio(money(3), money(20_000)), "0.0002");
        // 2 ÷ 3 = 0.66666… → 0.6667; 1 ÷ 6 = 0.16666… → 0.1667.
        assert_eq!(ratio(money(2), money(3)), "0.6667");
        assert_eq!(ratio(money(1), money(6)), "0.1667");
    }
}
