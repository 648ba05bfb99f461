//! Delinquency and the portfolio: each loan keeps the principal and
//! interest its payments have paid (a prepayment's excess included), so the
//! portfolio report is one pass over the loans; and an index on the oldest
//! unpaid due date of active loans serves `?bucket=`.
//!
//! Existing databases: the principal paid is the principal its installments
//! no longer owe; the interest paid, what its installments record as paid.

use sea_orm_migration::prelude::*;

use super::m20261125_000001_initial_schema::run_statements;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r"
ALTER TABLE loans ADD COLUMN principal_paid_minor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE loans ADD COLUMN interest_paid_minor BIGINT NOT NULL DEFAULT 0;
UPDATE loans SET
    principal_paid_minor = principal_minor - (
        SELECT COALESCE(SUM(i.principal_minor - i.principal_paid_minor), 0)
        FROM installments i WHERE i.loan_id = loans.id),
    interest_paid_minor = (
        SELECT COALESCE(SUM(i.interest_paid_minor), 0)
        FROM installments i WHERE i.loan_id = loans.id)
WHERE approved_at IS NOT NULL;
CREATE INDEX loans_active_due_idx ON loans (next_due_date, id)
    WHERE status IN ('APPROVED', 'OVERDUE');
CREATE INDEX loans_user_active_due_idx ON loans (user_id, next_due_date, id)
    WHERE status IN ('APPROVED', 'OVERDUE');
";

const DOWN: &str = r"
DROP INDEX loans_user_active_due_idx;
DROP INDEX loans_active_due_idx;
ALTER TABLE loans DROP COLUMN interest_paid_minor;
ALTER TABLE loans DROP COLUMN principal_paid_minor;
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
