//! The journal's lines move into their entries, and the daily totals of
//! the six accounts into one row per day and slot.
//!
//! A payment's entry used to be one `journal_entries` row, a
//! `journal_lines` row per account it touched and a `journal_totals` row
//! per account: on PostgreSQL that was thirteen more write-ahead log
//! records per payment and a fifth more database time, which the payment
//! benchmark showed (BENCHMARKS.md, 2026-12-07). The chart has six fixed
//! accounts and an entry has at most one line per account, so an entry's
//! lines are six signed columns of its row (a debit above zero, a credit
//! below, no line at zero; a `CHECK` keeps every entry balanced), and a
//! day's totals are one row per slot with a debit and a credit column per
//! account: a payment now writes one entry row and updates one totals row.
//!
//! Existing journals are carried over as they are: each entry's lines
//! become its columns, and the totals of each day and slot one row.

use sea_orm_migration::prelude::*;

use super::m20261125_000001_initial_schema::run_statements;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r"
ALTER TABLE journal_entries ADD COLUMN cash_minor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE journal_entries ADD COLUMN loans_receivable_minor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE journal_entries ADD COLUMN interest_income_minor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE journal_entries ADD COLUMN fee_income_minor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE journal_entries ADD COLUMN recoveries_minor BIGINT NOT NULL DEFAULT 0;
-- A column constraint may name the other columns on both databases; it is
-- checked against the rows already there, all zero at this point.
ALTER TABLE journal_entries ADD COLUMN loan_losses_minor BIGINT NOT NULL DEFAULT 0
    CONSTRAINT journal_entries_balanced
    CHECK (cash_minor + loans_receivable_minor + interest_income_minor + fee_income_minor
           + recoveries_minor + loan_losses_minor = 0);
UPDATE journal_entries SET
    cash_minor = l.cash, loans_receivable_minor = l.loans_receivable,
    interest_income_minor = l.interest_income, fee_income_minor = l.fee_income,
    recoveries_minor = l.recoveries, loan_losses_minor = l.loan_losses
FROM (SELECT entry_id,
             SUM(CASE account WHEN '1000' THEN debit_minor - credit_minor ELSE 0 END) AS cash,
             SUM(CASE account WHEN '1100' THEN debit_minor - credit_minor ELSE 0 END) AS loans_receivable,
             SUM(CASE account WHEN '4000' THEN debit_minor - credit_minor ELSE 0 END) AS interest_income,
             SUM(CASE account WHEN '4100' THEN debit_minor - credit_minor ELSE 0 END) AS fee_income,
             SUM(CASE account WHEN '4200' THEN debit_minor - credit_minor ELSE 0 END) AS recoveries,
             SUM(CASE account WHEN '5000' THEN debit_minor - credit_minor ELSE 0 END) AS loan_losses
      FROM journal_lines GROUP BY entry_id) AS l
WHERE journal_entries.id = l.entry_id;
DROP TABLE journal_lines;

CREATE TABLE journal_day_totals (
    booking_date {date} NOT NULL,
    slot INTEGER NOT NULL,
    cash_debit_minor BIGINT NOT NULL DEFAULT 0,
    cash_credit_minor BIGINT NOT NULL DEFAULT 0,
    loans_receivable_debit_minor BIGINT NOT NULL DEFAULT 0,
    loans_receivable_credit_minor BIGINT NOT NULL DEFAULT 0,
    interest_income_debit_minor BIGINT NOT NULL DEFAULT 0,
    interest_income_credit_minor BIGINT NOT NULL DEFAULT 0,
    fee_income_debit_minor BIGINT NOT NULL DEFAULT 0,
    fee_income_credit_minor BIGINT NOT NULL DEFAULT 0,
    recoveries_debit_minor BIGINT NOT NULL DEFAULT 0,
    recoveries_credit_minor BIGINT NOT NULL DEFAULT 0,
    loan_losses_debit_minor BIGINT NOT NULL DEFAULT 0,
    loan_losses_credit_minor BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (booking_date, slot)
);
INSERT INTO journal_day_totals
SELECT booking_date, slot,
       SUM(CASE account WHEN '1000' THEN debit_minor ELSE 0 END),
       SUM(CASE account WHEN '1000' THEN credit_minor ELSE 0 END),
       SUM(CASE account WHEN '1100' THEN debit_minor ELSE 0 END),
       SUM(CASE account WHEN '1100' THEN credit_minor ELSE 0 END),
       SUM(CASE account WHEN '4000' THEN debit_minor ELSE 0 END),
       SUM(CASE account WHEN '4000' THEN credit_minor ELSE 0 END),
       SUM(CASE account WHEN '4100' THEN debit_minor ELSE 0 END),
       SUM(CASE account WHEN '4100' THEN credit_minor ELSE 0 END),
       SUM(CASE account WHEN '4200' THEN debit_minor ELSE 0 END),
       SUM(CASE account WHEN '4200' THEN credit_minor ELSE 0 END),
       SUM(CASE account WHEN '5000' THEN debit_minor ELSE 0 END),
       SUM(CASE account WHEN '5000' THEN credit_minor ELSE 0 END)
FROM journal_totals GROUP BY booking_date, slot;
DROP TABLE journal_totals;
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_statements(manager, UP).await
    }

    /// Down is not offered: the lines' old table could be rebuilt from the
    /// columns, but nothing older than this version reads the journal in
    /// this form, and a half-way schema would lose nothing only by luck.
    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration(
            "the journal's lines cannot be moved back out of their entries".into(),
        ))
    }
}
