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
    #[serde(rename = "WRITTEN_OFF")]
    pub written_off: i64,
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
            LoanStatus::WrittenOff => &mut self.written_off,
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
    /// Σ interest portions of posted payments that are not recoveries.
    pub interest_collected: Money,
    /// Σ penalty portions of posted payments that are not recoveries.
    pub penalties_collected: Money,
    /// Σ principal written off (the unpaid principal of each written-off
    /// loan when it was written off).
    pub principal_written_off: Money,
    /// Σ posted payments on written-off loans recorded after their
    /// write-off.
    pub recoveries: Money,
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

/// The APPROVED/OVERDUE loans per bucket, and beside them the loans
/// written off (in no bucket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delinquency {
    /// Every bucket in order, empty ones with zeros.
    pub buckets: Vec<BucketRow>,
    pub written_off_loans: i64,
    /// Σ their principal written off.
    pub principal_written_off: Money,
}

/// Loans and their principal outstanding per bucket on `today`, and the
/// written-off loans with the principal written off, in one statement.
pub async fn delinquency(
    connection: &impl ConnectionTrait,
    today: NaiveDate,
) -> Result<Delinquency, DbErr> {
    let backend = connection.get_database_backend();
    let (bucket, dates) = crate::ledger::delinquency::bucket_sql(today);
    let written_off = LoanStatus::WrittenOff.as_str();
    let sql = placeholders(
        backend,
        &format!(
            "SELECT CASE WHEN status = '{written_off}' THEN '{written_off}' ELSE {bucket} END AS bucket, \
               COUNT(*) AS loans, \
               CAST(COALESCE(SUM(CASE WHEN status = '{written_off}' THEN principal_written_off_minor \
                 ELSE principal_minor - principal_paid_minor END), 0) AS BIGINT) AS principal \
             FROM loans WHERE {active} OR status = '{written_off}' GROUP BY 1",
            active = crate::db::entities::loan::active_sql(),
        ),
    );
    let values: Vec<Value> = dates.into_iter().map(Value::from).collect();
    let rows = connection
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let buckets: Vec<BucketRow> = DelinquencyBucket::ALL
        .iter()
        .map(|bucket| BucketRow {
            bucket: *bucket,
            loans: 0,
            principal_outstanding: Money::ZERO,
        })
        .collect();
    let mut delinquency = Delinquency {
        buckets,
        written_off_loans: 0,
        principal_written_off: Money::ZERO,
    };
    for row in rows {
        let name: String = row.try_get("", "bucket")?;
        let (loans, principal) = (
            row.try_get("", "loans")?,
            Money::from_minor(row.try_get("", "principal")?),
        );
        if name == written_off {
            delinquency.written_off_loans = loans;
            delinquency.principal_written_off = principal;
        } else if let Some(slot) = delinquency
            .buckets
            .iter_mut()
            .find(|slot| slot.bucket.as_str() == name)
        {
            slot.loans = loans;
            slot.principal_outstanding = principal;
        }
    }
    Ok(delinquency)
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
    // A written-off loan's interest and fees collected are those paid
    // before its write-off; what it was paid since is recovered.
    let rows = connection
        .query_all_raw(Statement::from_string(
            backend,
            format!(
                "SELECT status, COUNT(*) AS loans, \
                   CAST(COALESCE(SUM(CASE WHEN approved_at IS NOT NULL THEN principal_minor ELSE 0 END), 0) AS BIGINT) AS disbursed, \
                   CAST(COALESCE(SUM(CASE WHEN status = '{written_off}' THEN interest_paid_before_write_off_minor \
                     ELSE interest_paid_minor END), 0) AS BIGINT) AS interest, \
                   CAST(COALESCE(SUM(CASE WHEN status = '{written_off}' THEN penalties_paid_before_write_off_minor \
                     ELSE penalties_paid_minor END), 0) AS BIGINT) AS penalties, \
                   CAST(COALESCE(SUM(CASE WHEN status = '{written_off}' THEN total_paid_minor - paid_before_write_off_minor \
                     ELSE 0 END), 0) AS BIGINT) AS recovered \
                 FROM loans GROUP BY status",
                written_off = LoanStatus::WrittenOff.as_str(),
            ),
        ))
        .await?;
    let mut loans_by_status = LoansByStatus::default();
    let (mut disbursed, mut interest, mut penalties, mut recovered) = (0i64, 0i64, 0i64, 0i64);
    for row in rows {
        let status: String = row.try_get("", "status")?;
        let Some(status) = LoanStatus::parse(&status) else {
            continue;
        };
        loans_by_status.count(status, row.try_get("", "loans")?);
        disbursed += row.try_get::<i64>("", "disbursed")?;
        interest += row.try_get::<i64>("", "interest")?;
        penalties += row.try_get::<i64>("", "penalties")?;
        recovered += row.try_get::<i64>("", "recovered")?;
    }
    let Delinquency {
        buckets,
        principal_written_off,
        ..
    } = delinquency(connection, today).await?;
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
        principal_written_off,
        recoveries: Money::from_minor(recovered),
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

/// Sets the `loans_by_bucket` and `principal_outstanding_minor` gauges,
/// and `loans_written_off` and `principal_written_off_minor`.
pub fn publish(delinquency: &Delinquency) {
    for row in &delinquency.buckets {
        metrics::gauge!("loans_by_bucket", "bucket" => row.bucket.as_str()).set(row.loans as f64);
        metrics::gauge!("principal_outstanding_minor", "bucket" => row.bucket.as_str())
            .set(row.principal_outstanding.minor() as f64);
    }
    metrics::gauge!("loans_written_off").set(delinquency.written_off_loans as f64);
    metrics::gauge!("principal_written_off_minor")
        .set(delinquency.principal_written_off.minor() as f64);
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
