use sea_orm::entity::prelude::*;

/// Σ debit and Σ credit of each account over the entries booked on a day,
/// by slot (the rows a day's writers are spread over). A posting
/// transaction updates one such row, whatever accounts it touches.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "journal_day_totals")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub booking_date: Date,
    #[sea_orm(primary_key, auto_increment = false)]
    pub slot: i32,
    pub cash_debit_minor: i64,
    pub cash_credit_minor: i64,
    pub loans_receivable_debit_minor: i64,
    pub loans_receivable_credit_minor: i64,
    pub interest_income_debit_minor: i64,
    pub interest_income_credit_minor: i64,
    pub fee_income_debit_minor: i64,
    pub fee_income_credit_minor: i64,
    pub recoveries_debit_minor: i64,
    pub recoveries_credit_minor: i64,
    pub loan_losses_debit_minor: i64,
    pub loan_losses_credit_minor: i64,
}

impl Model {
    /// A row of `totals`: (debit, credit) of the six accounts in the
    /// chart's code order (`journal::accounts::Account::ALL`).
    pub fn of(booking_date: Date, slot: i32, totals: [(i64, i64); 6]) -> Model {
        let [
            (cash_debit_minor, cash_credit_minor),
            (loans_receivable_debit_minor, loans_receivable_credit_minor),
            (interest_income_debit_minor, interest_income_credit_minor),
            (fee_income_debit_minor, fee_income_credit_minor),
            (recoveries_debit_minor, recoveries_credit_minor),
            (loan_losses_debit_minor, loan_losses_credit_minor),
        ] = totals;
        Model {
            booking_date,
            slot,
            cash_debit_minor,
            cash_credit_minor,
            loans_receivable_debit_minor,
            loans_receivable_credit_minor,
            interest_income_debit_minor,
            interest_income_credit_minor,
            fee_income_debit_minor,
            fee_income_credit_minor,
            recoveries_debit_minor,
            recoveries_credit_minor,
            loan_losses_debit_minor,
            loan_losses_credit_minor,
        }
    }
}

impl ActiveModelBehavior for ActiveModel {}
