//! Cheaper writes for every payment: room on the pages of the rows it
//! updates, and one index fewer to keep.
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

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            run_statements(manager, FILL_PAGES_TO_85).await?;
        }
        run_statements(manager, "DROP INDEX installments_user_idx;").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            run_statements(manager, FILL_PAGES_FULL).await?;
        }
        run_statements(
            manager,
            "CREATE INDEX installments_user_idx ON installments (user_id);",
        )
        .await
    }
}
