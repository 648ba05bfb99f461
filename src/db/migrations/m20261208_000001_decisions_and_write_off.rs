//! Four eyes and write-off.
//!
//! - `decisions`: requests that take a second person — who asked, what,
//!   and what became of it. A request is never deleted: a rejection is
//!   recorded. At most one decision is pending per action and subject (the
//!   loan, or the payment of a reversal), by a partial unique index, so
//!   two requests racing for the same thing cannot both be pending.
//! - Loans gain the status `WRITTEN_OFF`, when and how much principal was
//!   written off, and what had been paid by then (the portfolio's
//!   `interestCollected` and `penaltiesCollected` count only payments made
//!   before a write-off; what came after is `recoveries`).
//!
//! The status check on `loans` is widened in place. PostgreSQL replaces
//! the constraint. SQLite cannot alter a constraint, and rebuilding a
//! table every other table refers to would need its foreign keys off for
//! the length of the migration; since a wider `CHECK` changes nothing
//! stored, the table's definition is edited in the schema itself, the way
//! SQLite documents for such changes (`writable_schema`, then a new
//! schema version so that every connection reads it again).

use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use sea_orm_migration::prelude::*;

use super::m20261125_000001_initial_schema::run_statements;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r"
ALTER TABLE loans ADD COLUMN written_off_at {ts};
ALTER TABLE loans ADD COLUMN principal_written_off_minor BIGINT NOT NULL DEFAULT 0;
-- what the loan's payments had paid when it was written off
ALTER TABLE loans ADD COLUMN paid_before_write_off_minor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE loans ADD COLUMN interest_paid_before_write_off_minor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE loans ADD COLUMN penalties_paid_before_write_off_minor BIGINT NOT NULL DEFAULT 0;

CREATE TABLE decisions (
    id {uuid} PRIMARY KEY,
    action TEXT NOT NULL CHECK (action IN ('APPROVE_LOAN', 'REVERSE_PAYMENT', 'WRITE_OFF')),
    loan_id {uuid} NOT NULL REFERENCES loans (id),
    payment_id {uuid} REFERENCES payments (id),
    -- the loan, or the payment of a reversal: what a pending decision is about
    subject_id {uuid} NOT NULL,
    request {json} NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'REJECTED')),
    requested_by {uuid} NOT NULL REFERENCES users (id),
    requested_at {ts} NOT NULL,
    decided_by {uuid} REFERENCES users (id),
    decided_at {ts},
    reason TEXT
);
CREATE UNIQUE INDEX decisions_one_pending ON decisions (action, subject_id)
    WHERE status = 'PENDING';
CREATE INDEX decisions_status_idx ON decisions (status, id);
CREATE INDEX decisions_loan_idx ON decisions (loan_id, id);
";

const STATUSES: &str = "'PENDING', 'APPROVED', 'REJECTED', 'CANCELLED', 'OVERDUE', 'PAID'";
const WIDER: &str =
    "'PENDING', 'APPROVED', 'REJECTED', 'CANCELLED', 'OVERDUE', 'PAID', 'WRITTEN_OFF'";

const DOWN: &str = r"
DROP TABLE decisions;
ALTER TABLE loans DROP COLUMN penalties_paid_before_write_off_minor;
ALTER TABLE loans DROP COLUMN interest_paid_before_write_off_minor;
ALTER TABLE loans DROP COLUMN paid_before_write_off_minor;
ALTER TABLE loans DROP COLUMN principal_written_off_minor;
ALTER TABLE loans DROP COLUMN written_off_at;
";

/// Lets `loans.status` hold `WRITTEN_OFF`.
async fn widen_status_check(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let connection = manager.get_connection();
    if manager.get_database_backend() == DatabaseBackend::Postgres {
        connection
            .execute_unprepared(&format!(
                "ALTER TABLE loans DROP CONSTRAINT loans_status_check;
                 ALTER TABLE loans ADD CONSTRAINT loans_status_check CHECK (status IN ({WIDER}));"
            ))
            .await?;
        return Ok(());
    }
    let version: i64 = connection
        .query_one_raw(Statement::from_string(
            DatabaseBackend::Sqlite,
            "PRAGMA schema_version",
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("no schema version".to_owned()))?
        .try_get_by_index(0)?;
    connection
        .execute_unprepared("PRAGMA writable_schema = ON")
        .await?;
    connection
        .execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Sqlite,
            "UPDATE sqlite_master SET sql = replace(sql, ?, ?) WHERE type = 'table' AND name = 'loans'",
            [STATUSES.into(), WIDER.into()],
        ))
        .await?;
    connection
        .execute_unprepared(&format!("PRAGMA schema_version = {}", version + 1))
        .await?;
    connection
        .execute_unprepared("PRAGMA writable_schema = OFF")
        .await?;
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_statements(manager, UP).await?;
        widen_status_check(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_statements(manager, DOWN).await
    }
}
