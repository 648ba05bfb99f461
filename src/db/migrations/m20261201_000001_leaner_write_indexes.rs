//! Fewer index entries per payment. Every payment writes a payment row and
//! a `PAYMENT_RECEIVED` notification, and each of their indexes costs an
//! entry (and its WAL) inside the loan's lock. Four of those entries
//! served nothing:
//!
//! - `payments_recorded_by_idx` and `notifications_loan_idx` back foreign
//!   keys to rows that are never deleted (users and loans are kept for
//!   good), and no query reads payments by recorder or notifications by
//!   loan.
//! - `notifications_dedup_key` indexed every notification without a key
//!   too (as NULL); only job notices carry one. It becomes partial, and
//!   the inserts name its predicate in `ON CONFLICT`.
//! - `notifications_email_pending_idx` (emails queued, not yet sent)
//!   indexed every new notification, none of which is queued yet. It now
//!   holds only queued ones, which is what its readers ask for.

use sea_orm_migration::prelude::*;

use super::m20261125_000001_initial_schema::run_statements;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r"
DROP INDEX payments_recorded_by_idx;
DROP INDEX notifications_loan_idx;
DROP INDEX notifications_dedup_key;
CREATE UNIQUE INDEX notifications_dedup_key ON notifications (dedup_key)
    WHERE dedup_key IS NOT NULL;
DROP INDEX notifications_email_pending_idx;
CREATE INDEX notifications_email_pending_idx ON notifications (email_enqueued_at)
    WHERE emailed_at IS NULL AND email_enqueued_at IS NOT NULL;
";

const DOWN: &str = r"
DROP INDEX notifications_email_pending_idx;
CREATE INDEX notifications_email_pending_idx ON notifications (email_enqueued_at)
    WHERE emailed_at IS NULL;
DROP INDEX notifications_dedup_key;
CREATE UNIQUE INDEX notifications_dedup_key ON notifications (dedup_key);
CREATE INDEX notifications_loan_idx ON notifications (loan_id);
CREATE INDEX payments_recorded_by_idx ON payments (recorded_by);
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
