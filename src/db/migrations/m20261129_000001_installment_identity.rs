//! Each approved installment remembers the id of its installment row.
//!
//! A `REDUCE_TERM` prepayment removes the installments it no longer needs;
//! reversing it (or a replay that undoes it) brings them back. They come
//! back under the id they had, so that what is keyed on an installment's id
//! (notices sent once per installment, ever) still recognises them.
//!
//! Existing databases: the id is the current row of the same number (no
//! prepayment could have removed one before this version).

use sea_orm_migration::prelude::*;

use super::m20261125_000001_initial_schema::run_statements;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r"
ALTER TABLE approved_installments ADD COLUMN installment_id {uuid};
UPDATE approved_installments SET installment_id = (
    SELECT installments.id FROM installments
    WHERE installments.loan_id = approved_installments.loan_id
      AND installments.number = approved_installments.number
);
";

const DOWN: &str = r"
ALTER TABLE approved_installments DROP COLUMN installment_id;
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
