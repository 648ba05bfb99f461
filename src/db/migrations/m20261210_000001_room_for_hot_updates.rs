//! Cheaper writes for every payment: room on the pages of the rows it
//! updates, one index fewer to keep, and no foreign key checks on its
//! journal entry.
//!
//! - Every payment updates its loan's row and one or more installment
//!   rows. PostgreSQL can update a row in place on its page (a "HOT"
//!   update: no new entry in any index) only when the page has room for
//!   the new version and no indexed column changed. Pages filled to the
//!   brim by inserts have none, so the first update of a loan moved its
//!   row and added an entry to each of the loan's eight indexes (the
//!   installment's five). Filling loan and installment pages to 85 %
//!   leaves that room. It applies to pages written from now on; an
//!   existing book gets it when its tables are rewritten (`VACUUM FULL
//!   loans, installments`, see docs/operations.md), and meanwhile as
//!   updates free space on the old pages. SQLite has no such setting.
//! - `installments_user_idx` (installments by user) serves no query: the
//!   one that filters installments by user (a borrower's overdue list)
//!   reads `installments_user_unpaid_due_idx`, and users are never
//!   deleted, so its foreign key never looks it up. Every insert and
//!   every moved row of an installment paid for it.
//! - The journal's two foreign keys (an entry's loan, its payment) cost
//!   every payment two index look-ups and row locks, in the loan's lock,
//!   for rows the same statement has just locked or inserted: entries are
//!   written in one place only, by the servicing pipeline, from the loan
//!   it holds and the payment it records, and loans and payments are
//!   never deleted. `verify_books` (which the servicing and books
//!   tests run) checks each loan's journal against its payments. SQLite
//!   cannot drop a constraint, so there the table is
//!   rebuilt without them, its rows and indexes as they were.

use sea_orm::DatabaseBackend;
use sea_orm_migration::prelude::*;

use super::m20261125_000001_initial_schema::run_statements;

#[derive(DeriveMigrationName)]
pub struct Migration;

const FILL_PAGES_TO_85: &str = r"
ALTER TABLE loans SET (fillfactor = 85);
ALTER TABLE installments SET (fillfactor = 85);
";

const FILL_PAGES_FULL: &str = r"
ALTER TABLE loans RESET (fillfactor);
ALTER TABLE installments RESET (fillfactor);
";

const POSTGRES_JOURNAL_WITHOUT_FOREIGN_KEYS: &str = r"
ALTER TABLE journal_entries DROP CONSTRAINT journal_entries_loan_id_fkey;
ALTER TABLE journal_entries DROP CONSTRAINT journal_entries_payment_id_fkey;
";

const POSTGRES_JOURNAL_WITH_FOREIGN_KEYS: &str = r"
ALTER TABLE journal_entries ADD CONSTRAINT journal_entries_loan_id_fkey
    FOREIGN KEY (loan_id) REFERENCES loans (id);
ALTER TABLE journal_entries ADD CONSTRAINT journal_entries_payment_id_fkey
    FOREIGN KEY (payment_id) REFERENCES payments (id);
";

/// SQLite's `journal_entries` rebuilt with `loan` and `payment` as the
/// column constraints of `loan_id` and `payment_id` (empty: none), its
/// rows and indexes kept.
fn sqlite_journal_rebuilt(loan: &str, payment: &str) -> String {
    format!(
        r"
CREATE TABLE journal_entries_rebuilt (
    id BLOB PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('DISBURSEMENT', 'REPAYMENT', 'REVERSAL', 'ADJUSTMENT',
                                       'WRITE_OFF', 'RECOVERY')),
    loan_id BLOB NOT NULL {loan},
    payment_id BLOB {payment},
    booking_date TEXT NOT NULL,
    value_date TEXT NOT NULL,
    posted_at TEXT NOT NULL,
    currency TEXT NOT NULL,
    cash_minor BIGINT NOT NULL DEFAULT 0,
    loans_receivable_minor BIGINT NOT NULL DEFAULT 0,
    interest_income_minor BIGINT NOT NULL DEFAULT 0,
    fee_income_minor BIGINT NOT NULL DEFAULT 0,
    recoveries_minor BIGINT NOT NULL DEFAULT 0,
    loan_losses_minor BIGINT NOT NULL DEFAULT 0
        CONSTRAINT journal_entries_balanced
        CHECK (cash_minor + loans_receivable_minor + interest_income_minor + fee_income_minor
               + recoveries_minor + loan_losses_minor = 0)
);
INSERT INTO journal_entries_rebuilt (id, kind, loan_id, payment_id, booking_date, value_date,
    posted_at, currency, cash_minor, loans_receivable_minor, interest_income_minor,
    fee_income_minor, recoveries_minor, loan_losses_minor)
SELECT id, kind, loan_id, payment_id, booking_date, value_date, posted_at, currency, cash_minor,
       loans_receivable_minor, interest_income_minor, fee_income_minor, recoveries_minor,
       loan_losses_minor
FROM journal_entries;
DROP TABLE journal_entries;
ALTER TABLE journal_entries_rebuilt RENAME TO journal_entries;
CREATE INDEX journal_entries_loan_idx ON journal_entries (loan_id, id);
CREATE INDEX journal_entries_booking_idx ON journal_entries (booking_date, id);
"
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            run_statements(manager, FILL_PAGES_TO_85).await?;
            run_statements(manager, POSTGRES_JOURNAL_WITHOUT_FOREIGN_KEYS).await?;
        } else {
            run_statements(manager, &sqlite_journal_rebuilt("", "")).await?;
        }
        run_statements(manager, "DROP INDEX installments_user_idx;").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            run_statements(manager, FILL_PAGES_FULL).await?;
            run_statements(manager, POSTGRES_JOURNAL_WITH_FOREIGN_KEYS).await?;
        } else {
            run_statements(
                manager,
                &sqlite_journal_rebuilt("REFERENCES loans (id)", "REFERENCES payments (id)"),
            )
            .await?;
        }
        run_statements(
            manager,
            "CREATE INDEX installments_user_idx ON installments (user_id);",
        )
        .await
    }
}
