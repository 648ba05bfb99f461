//! The books: a double-entry journal beside the loans.
//!
//! - `journal_entries`: one row per entry, never updated or deleted, in
//!   posting order by id (time-ordered UUIDs);
//! - `journal_lines`: its lines, one per account at most;
//! - `journal_totals`: Σ debit and Σ credit per account, booking day and
//!   slot, kept in the transaction that posts the lines. A slot spreads
//!   the writers of one day over several rows, so that concurrent payments
//!   do not all wait on one row per account (`journal::store`);
//! - `books`: one row — the date the books are closed through, and the day
//!   the journal starts from.
//!
//! Existing databases upgrade in place: `Db::migrate` books, on the
//! upgrade day, one `DISBURSEMENT` per loan ever approved and one
//! `REPAYMENT` per posted payment (its portions as they stand), with their
//! original value dates, once (`journal_since` marks it done), in the
//! service time zone, which only the running service knows.

use sea_orm_migration::prelude::*;

use super::m20261125_000001_initial_schema::run_statements;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r"
CREATE TABLE journal_entries (
    id {uuid} PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('DISBURSEMENT', 'REPAYMENT', 'REVERSAL', 'ADJUSTMENT',
                                       'WRITE_OFF', 'RECOVERY')),
    loan_id {uuid} NOT NULL REFERENCES loans (id),
    payment_id {uuid} REFERENCES payments (id),
    booking_date {date} NOT NULL,
    value_date {date} NOT NULL,
    posted_at {ts} NOT NULL,
    currency TEXT NOT NULL
);
CREATE INDEX journal_entries_loan_idx ON journal_entries (loan_id, id);
CREATE INDEX journal_entries_booking_idx ON journal_entries (booking_date, id);

CREATE TABLE journal_lines (
    entry_id {uuid} NOT NULL REFERENCES journal_entries (id),
    account TEXT NOT NULL CHECK (account IN ('1000', '1100', '4000', '4100', '4200', '5000')),
    debit_minor BIGINT NOT NULL CHECK (debit_minor >= 0),
    credit_minor BIGINT NOT NULL CHECK (credit_minor >= 0),
    -- exactly one side above zero: zero lines are left out
    CHECK ((debit_minor > 0 AND credit_minor = 0) OR (debit_minor = 0 AND credit_minor > 0)),
    PRIMARY KEY (entry_id, account)
);

CREATE TABLE journal_totals (
    booking_date {date} NOT NULL,
    account TEXT NOT NULL,
    slot INTEGER NOT NULL,
    debit_minor BIGINT NOT NULL,
    credit_minor BIGINT NOT NULL,
    PRIMARY KEY (booking_date, account, slot)
);

CREATE TABLE books (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    closed_through {date},
    journal_since {date}
);
INSERT INTO books (id) VALUES (1);
";

const DOWN: &str = r"
DROP TABLE books;
DROP TABLE journal_totals;
DROP TABLE journal_lines;
DROP TABLE journal_entries;
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_statements(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_statements(manager, DOWN).await
    }
}
