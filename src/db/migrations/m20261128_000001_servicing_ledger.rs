//! The loan as a ledger: payments gain a value date, a status (posted or
//! reversed), an excess policy and their current portions; each approved
//! loan keeps its schedule as approved, which replays start from; and
//! notifications gain the `PAYMENT_REVERSED` kind.
//!
//! Existing databases upgrade in place: every existing payment is posted,
//! valued on the day it was recorded (in the service time zone: filled in
//! by `Db::migrate`, see `UNSET_VALUE_DATE`), with its current portions
//! those it was recorded with; the approved schedule of an existing loan is its
//! installments' principal and interest, which nothing changed since
//! approval.

use sea_orm_migration::prelude::*;

use super::m20261125_000001_initial_schema::run_statements;

#[derive(DeriveMigrationName)]
pub struct Migration;

const COMMON: &str = r#"
ALTER TABLE payments ADD COLUMN value_date {date} NOT NULL DEFAULT '1970-01-01';
ALTER TABLE payments ADD COLUMN status TEXT NOT NULL DEFAULT 'POSTED'
    CHECK (status IN ('POSTED', 'REVERSED'));
ALTER TABLE payments ADD COLUMN excess TEXT NOT NULL DEFAULT 'NEXT_INSTALLMENTS';
ALTER TABLE payments ADD COLUMN reversed_at {ts};
ALTER TABLE payments ADD COLUMN reversed_by {uuid} REFERENCES users (id);
ALTER TABLE payments ADD COLUMN reversal_reason TEXT;
-- what the payment pays in the current replay (zero once reversed); the
-- recorded portions above stay as the receipt stated them
ALTER TABLE payments ADD COLUMN current_principal_minor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE payments ADD COLUMN current_interest_minor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE payments ADD COLUMN current_penalty_minor BIGINT NOT NULL DEFAULT 0;
-- value_date keeps the 1970-01-01 mark until Db::migrate fills it in with
-- the day each payment was recorded in the service time zone, which only
-- the running service knows
UPDATE payments SET
    current_principal_minor = principal_minor,
    current_interest_minor = interest_minor,
    current_penalty_minor = penalty_minor;
CREATE INDEX payments_reversed_by_idx ON payments (reversed_by) WHERE reversed_by IS NOT NULL;

-- written once at approval, never changed: every replay starts here
CREATE TABLE approved_installments (
    loan_id {uuid} NOT NULL REFERENCES loans (id) ON DELETE CASCADE,
    number INTEGER NOT NULL CHECK (number >= 1),
    due_date {date} NOT NULL,
    principal_minor BIGINT NOT NULL CHECK (principal_minor >= 0),
    interest_minor BIGINT NOT NULL CHECK (interest_minor >= 0),
    PRIMARY KEY (loan_id, number)
);
INSERT INTO approved_installments (loan_id, number, due_date, principal_minor, interest_minor)
    SELECT loan_id, number, due_date, principal_minor, interest_minor FROM installments;
"#;

const KINDS: &str = "'LOAN_APPROVED', 'LOAN_REJECTED', 'PAYMENT_RECEIVED', 'PAYMENT_DUE_SOON', \
     'PAYMENT_OVERDUE', 'PENALTY_APPLIED', 'LOAN_PAID', 'PAYMENT_REVERSED'";

const POSTGRES_KINDS: &str = r#"
ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check CHECK (kind IN ({kinds}));
"#;

/// SQLite cannot change a CHECK constraint: the table is rebuilt, with
/// the same columns and indexes.
const SQLITE_KINDS: &str = r#"
CREATE TABLE notifications_rebuilt (
    id {uuid} PRIMARY KEY,
    user_id {uuid} NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    loan_id {uuid} REFERENCES loans (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ({kinds})),
    title TEXT NOT NULL,
    message TEXT NOT NULL,
    dedup_key TEXT,
    read_at {ts},
    email_enqueued_at {ts},
    emailed_at {ts},
    created_at {ts} NOT NULL DEFAULT {now}
);
INSERT INTO notifications_rebuilt (id, user_id, loan_id, kind, title, message, dedup_key,
        read_at, email_enqueued_at, emailed_at, created_at)
    SELECT id, user_id, loan_id, kind, title, message, dedup_key,
        read_at, email_enqueued_at, emailed_at, created_at FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_rebuilt RENAME TO notifications;
CREATE UNIQUE INDEX notifications_dedup_key ON notifications (dedup_key);
CREATE INDEX notifications_user_idx ON notifications (user_id, id);
CREATE INDEX notifications_user_unread_idx ON notifications (user_id, id) WHERE read_at IS NULL;
CREATE INDEX notifications_loan_idx ON notifications (loan_id);
CREATE INDEX notifications_email_outbox_idx ON notifications (created_at)
    WHERE email_enqueued_at IS NULL;
CREATE INDEX notifications_email_pending_idx ON notifications (email_enqueued_at)
    WHERE emailed_at IS NULL;
"#;

const DOWN: &str = r#"
DROP TABLE approved_installments;
DROP INDEX payments_reversed_by_idx;
ALTER TABLE payments DROP COLUMN current_penalty_minor;
ALTER TABLE payments DROP COLUMN current_interest_minor;
ALTER TABLE payments DROP COLUMN current_principal_minor;
ALTER TABLE payments DROP COLUMN reversal_reason;
ALTER TABLE payments DROP COLUMN reversed_by;
ALTER TABLE payments DROP COLUMN reversed_at;
ALTER TABLE payments DROP COLUMN excess;
ALTER TABLE payments DROP COLUMN status;
ALTER TABLE payments DROP COLUMN value_date;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// One transaction on both databases: a rebuild half done must not
    /// survive a crash.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let postgres = manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres;
        run_statements(manager, COMMON).await?;
        let kinds = if postgres {
            POSTGRES_KINDS
        } else {
            SQLITE_KINDS
        };
        run_statements(manager, &kinds.replace("{kinds}", KINDS)).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_statements(manager, DOWN).await
    }
}
