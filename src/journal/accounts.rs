//! The chart of accounts: six accounts, fixed, in code order.

use serde::Serialize;
use utoipa::ToSchema;

/// Whether an account's balance is its debits less its credits (assets
/// and expenses) or the other way round (income).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum AccountType {
    Asset,
    Income,
    Expense,
}

impl AccountType {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountType::Asset => "ASSET",
            AccountType::Income => "INCOME",
            AccountType::Expense => "EXPENSE",
        }
    }

    /// Whether a debit raises the balance.
    pub fn is_debit_normal(self) -> bool {
        matches!(self, AccountType::Asset | AccountType::Expense)
    }
}

/// An account of the chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Account {
    /// The lender's money for lending: credited by every loan paid out,
    /// debited by every payment received.
    Cash,
    /// Principal lent and not yet repaid (nor written off).
    LoansReceivable,
    /// Interest received (cash basis: when paid, not when due).
    InterestIncome,
    /// Late fees received.
    FeeIncome,
    /// Money received on loans already written off.
    Recoveries,
    /// Principal written off.
    LoanLosses,
}

impl Account {
    /// Every account, in code order.
    pub const ALL: [Account; 6] = [
        Account::Cash,
        Account::LoansReceivable,
        Account::InterestIncome,
        Account::FeeIncome,
        Account::Recoveries,
        Account::LoanLosses,
    ];

    /// The account's place in [`Account::ALL`], which the journal's rows
    /// follow.
    pub fn position(self) -> usize {
        self as usize
    }

    pub fn code(self) -> &'static str {
        match self {
            Account::Cash => "1000",
            Account::LoansReceivable => "1100",
            Account::InterestIncome => "4000",
            Account::FeeIncome => "4100",
            Account::Recoveries => "4200",
            Account::LoanLosses => "5000",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Account::Cash => "CASH",
            Account::LoansReceivable => "LOANS_RECEIVABLE",
            Account::InterestIncome => "INTEREST_INCOME",
            Account::FeeIncome => "FEE_INCOME",
            Account::Recoveries => "RECOVERIES",
            Account::LoanLosses => "LOAN_LOSSES",
        }
    }

    /// The stem of the account's columns: `cash_minor` on an entry,
    /// `cash_debit_minor` and `cash_credit_minor` in a day's totals.
    pub fn column_stem(self) -> &'static str {
        match self {
            Account::Cash => "cash",
            Account::LoansReceivable => "loans_receivable",
            Account::InterestIncome => "interest_income",
            Account::FeeIncome => "fee_income",
            Account::Recoveries => "recoveries",
            Account::LoanLosses => "loan_losses",
        }
    }

    /// The account's two columns in a day's totals: its debits, its
    /// credits.
    pub fn day_total_columns(self) -> [String; 2] {
        ["debit", "credit"].map(|side| format!("{}_{side}_minor", self.column_stem()))
    }

    pub fn account_type(self) -> AccountType {
        match self {
            Account::Cash | Account::LoansReceivable => AccountType::Asset,
            Account::InterestIncome | Account::FeeIncome | Account::Recoveries => {
                AccountType::Income
            }
            Account::LoanLosses => AccountType::Expense,
        }
    }

    /// The account with this code.
    pub fn of_code(code: &str) -> Option<Account> {
        Account::ALL
            .into_iter()
            .find(|account| account.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_is_the_contracts() {
        let chart: Vec<(&str, &str, &str)> = Account::ALL
            .iter()
            .map(|a| (a.code(), a.name(), a.account_type().as_str()))
            .collect();
        assert_eq!(
            chart,
            vec![
                ("1000", "CASH", "ASSET"),
                ("1100", "LOANS_RECEIVABLE", "ASSET"),
                ("4000", "INTEREST_INCOME", "INCOME"),
                ("4100", "FEE_INCOME", "INCOME"),
                ("4200", "RECOVERIES", "INCOME"),
                ("5000", "LOAN_LOSSES", "EXPENSE"),
            ]
        );
        for (position, account) in Account::ALL.into_iter().enumerate() {
            assert_eq!(Account::of_code(account.code()), Some(account));
            assert_eq!(account.position(), position);
        }
        assert_eq!(Account::of_code("9999"), None);
    }
}
