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
        for account in Account::ALL {
            assert_eq!(Account::of_code(account.code()), Some(account));
        }
        assert_eq!(Account::of_code("9999"), None);
    }
}
