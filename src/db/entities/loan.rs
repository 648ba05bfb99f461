use sea_orm::entity::prelude::*;

use super::LoanStatus;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "loans")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub status: LoanStatus,
    pub currency: String,
    pub principal_minor: i64,
    pub annual_interest_rate: String,
    pub term_months: i32,
    pub purpose: Option<String>,
    pub installment_minor: i64,
    pub total_payable_minor: i64,
    pub total_paid_minor: i64,
    pub penalties_minor: i64,
    pub penalties_paid_minor: i64,
    pub next_due_date: Option<Date>,
    pub first_due_date: Option<Date>,
    pub approved_by: Option<Uuid>,
    pub approved_at: Option<DateTimeUtc>,
    pub rejected_by: Option<Uuid>,
    pub rejected_at: Option<DateTimeUtc>,
    pub rejection_reason: Option<String>,
    pub cancelled_at: Option<DateTimeUtc>,
    pub paid_off_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Principal its posted payments paid, a prepayment's excess included.
    pub principal_paid_minor: i64,
    /// Interest its posted payments paid.
    pub interest_paid_minor: i64,
    /// When it was written off (`None` for a loan that never was).
    pub written_off_at: Option<DateTimeUtc>,
    /// Its unpaid principal then.
    pub principal_written_off_minor: i64,
    /// What its payments had paid then, in all, of interest and of late
    /// fees (the portfolio counts what came later as recoveries).
    pub paid_before_write_off_minor: i64,
    pub interest_paid_before_write_off_minor: i64,
    pub penalties_paid_before_write_off_minor: i64,
}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The running totals the ledger rules work on.
    pub fn totals(&self) -> crate::ledger::LoanTotals {
        use crate::money::Money;
        crate::ledger::LoanTotals {
            total_payable: Money::from_minor(self.total_payable_minor),
            penalties: Money::from_minor(self.penalties_minor),
            penalties_paid: Money::from_minor(self.penalties_paid_minor),
            total_paid: Money::from_minor(self.total_paid_minor),
        }
    }
}

/// `status IN ('APPROVED', 'OVERDUE')`: loans being repaid
/// ([`LoanStatus::is_active`]), written from `LoanStatus::ACTIVE` as a
/// literal so that both databases match it to the partial indexes on
/// active loans (a bound parameter would not). The one text of the rule
/// in SQL, for raw statements too.
pub fn active_sql() -> String {
    let statuses: Vec<String> = LoanStatus::ACTIVE
        .iter()
        .map(|status| format!("'{}'", status.as_str()))
        .collect();
    format!("status IN ({})", statuses.join(", "))
}

/// [`active_sql`] as a query condition.
pub fn is_active() -> Expr {
    Expr::cust(active_sql())
}
