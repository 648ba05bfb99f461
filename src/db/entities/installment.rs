use sea_orm::entity::prelude::*;

use super::InstallmentStatus;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "installments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub loan_id: Uuid,
    pub user_id: Uuid,
    pub number: i32,
    pub due_date: Date,
    pub principal_minor: i64,
    pub interest_minor: i64,
    pub penalty_minor: i64,
    pub principal_paid_minor: i64,
    pub interest_paid_minor: i64,
    pub penalty_paid_minor: i64,
    pub status: InstallmentStatus,
    pub overdue_since: Option<Date>,
    pub penalty_applied_on: Option<Date>,
    pub paid_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The figures the ledger rules work on.
    pub fn figures(&self) -> crate::ledger::InstallmentFigures {
        use crate::ledger::Owed;
        use crate::money::Money;
        crate::ledger::InstallmentFigures {
            due_date: self.due_date,
            due: Owed {
                penalty: Money::from_minor(self.penalty_minor),
                interest: Money::from_minor(self.interest_minor),
                principal: Money::from_minor(self.principal_minor),
            },
            paid: Owed {
                penalty: Money::from_minor(self.penalty_paid_minor),
                interest: Money::from_minor(self.interest_paid_minor),
                principal: Money::from_minor(self.principal_paid_minor),
            },
        }
    }
}

/// `status <> 'PAID'`: installments not fully paid. Written as a literal
/// so that both databases match it to the partial indexes on unpaid
/// installments (`WHERE status <> 'PAID'`); a bound parameter would not.
pub fn not_fully_paid() -> Expr {
    Expr::cust("status <> 'PAID'")
}

/// Installments overdue on `as_of` by the ledger's rule
/// ([`crate::ledger::is_overdue`]): not fully paid, due before `as_of`.
pub fn overdue_on(as_of: Date) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(not_fully_paid())
        .add(Column::DueDate.lt(as_of))
}

/// Installments of loans that are not written off: a written-off loan's
/// unpaid installments stay owed but are no longer collected (no overdue
/// list, no late fees). The few written-off loans come from
/// `loans_status_idx`.
pub fn of_loans_still_collected() -> sea_orm::Condition {
    use sea_orm::sea_query::Query;
    sea_orm::Condition::all().add(
        Column::LoanId.not_in_subquery(
            Query::select()
                .column(super::loan::Column::Id)
                .from(super::loan::Entity)
                .and_where(super::loan::Column::Status.eq(super::LoanStatus::WrittenOff))
                .to_owned(),
        ),
    )
}
