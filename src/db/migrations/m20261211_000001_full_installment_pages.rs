//! Installment pages filled to the brim again, on PostgreSQL (SQLite has
//! no such setting).
//!
//! Filling them to 85 % (`m20261210_000001_room_for_hot_updates`) was meant
//! to keep a payment's update of an installment on its page, but on the
//! benchmark's book 99 % of those updates already stayed there without it:
//! each update leaves a dead version that the next one on the page prunes,
//! so pages make their own room. What the setting did do is make the table
//! 17 % larger (162 → 189 MB for a million installments), that much more
//! to read into the buffer cache for each loan a payment loads. Loan pages
//! stay at 85 %: that table is small, and a moved loan row costs an entry
//! in each of its eight indexes.

use sea_orm::DatabaseBackend;
use sea_orm_migration::prelude::*;

use super::m20261125_000001_initial_schema::run_statements;

#[derive(DeriveMigrationName)]
pub struct Migration;

const FULL_PAGES: &str = "ALTER TABLE installments RESET (fillfactor);";

const PAGES_TO_85: &str = "ALTER TABLE installments SET (fillfactor = 85);";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        run_statements(manager, FULL_PAGES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        run_statements(manager, PAGES_TO_85).await
    }
}
