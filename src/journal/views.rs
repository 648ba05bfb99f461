//! The books as clients see them: entries with their lines, the trial
//! balance, the closing date, and their CSV forms.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::accounts::{Account, AccountType};
use super::store;
use crate::db::entities::journal_entry;
use crate::enums::EntryKind;
use crate::money::Money;

/// One line: one of `debit`, `credit` above zero, the other `0.00`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LineView {
    /// The account's code: `1000` CASH, `1100` LOANS_RECEIVABLE, `4000`
    /// INTEREST_INCOME, `4100` FEE_INCOME, `4200` RECOVERIES, `5000`
    /// LOAN_LOSSES.
    #[schema(example = "1000")]
    pub account: String,
    pub debit: Money,
    pub credit: Money,
}

/// A journal entry.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntryView {
    pub id: Uuid,
    pub kind: EntryKind,
    pub loan_id: Uuid,
    /// The payment it books; `null` unless it books one.
    pub payment_id: Option<Uuid>,
    /// The service's calendar date when it was posted.
    pub booking_date: NaiveDate,
    /// The approval date of a disbursement, the value date of a
    /// repayment or recovery, else the booking date.
    pub value_date: NaiveDate,
    #[serde(with = "crate::http::format::timestamp")]
    pub posted_at: DateTime<Utc>,
    pub currency: String,
    /// In account order; Σ debits = Σ credits.
    pub lines: Vec<LineView>,
}

impl EntryView {
    pub fn new(entry: journal_entry::Model) -> EntryView {
        let lines = store::lines_of(&entry)
            .into_iter()
            .map(|line| LineView {
                account: line.account.code().to_owned(),
                debit: line.debit,
                credit: line.credit,
            })
            .collect();
        EntryView {
            id: entry.id,
            kind: entry.kind,
            loan_id: entry.loan_id,
            payment_id: entry.payment_id,
            booking_date: entry.booking_date,
            value_date: entry.value_date,
            posted_at: entry.posted_at,
            currency: entry.currency,
            lines,
        }
    }
}

/// One account of the trial balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountBalance {
    #[schema(example = "1000")]
    pub code: &'static str,
    #[schema(example = "CASH")]
    pub name: &'static str,
    #[serde(rename = "type")]
    pub account_type: AccountType,
    /// Σ of its lines' debits booked on or before the day.
    pub debit: Money,
    /// Σ of its lines' credits booked on or before the day.
    pub credit: Money,
    /// Debit − credit for ASSET and EXPENSE accounts, credit − debit for
    /// INCOME accounts; negative with a leading `-`.
    pub balance: Money,
}

impl AccountBalance {
    pub fn new(account: Account, debit: Money, credit: Money) -> AccountBalance {
        let account_type = account.account_type();
        AccountBalance {
            code: account.code(),
            name: account.name(),
            account_type,
            debit,
            credit,
            balance: if account_type.is_debit_normal() {
                debit - credit
            } else {
                credit - debit
            },
        }
    }
}

/// Every account's totals as of a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialBalance {
    pub as_of: NaiveDate,
    pub currency: String,
    /// All six accounts, in code order.
    pub accounts: Vec<AccountBalance>,
    pub total_debit: Money,
    pub total_credit: Money,
}

impl TrialBalance {
    /// The CSV form: a header, one row per account.
    pub fn csv(&self) -> String {
        let mut text = String::from("code,name,type,debit,credit,balance\n");
        for account in &self.accounts {
            text.push_str(&format!(
                "{},{},{},{},{},{}\n",
                account.code,
                account.name,
                account.account_type.as_str(),
                account.debit,
                account.credit,
                account.balance
            ));
        }
        text
    }
}

/// How far the books are closed.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClosingView {
    /// Nothing may be valued on or before this day; `null` until the
    /// books are first closed.
    pub closed_through: Option<NaiveDate>,
}

/// The header of the journal's CSV.
pub const JOURNAL_CSV_HEADER: &str =
    "entryId,kind,bookingDate,valueDate,loanId,paymentId,account,debit,credit\n";

/// The CSV rows of an entry, one per line.
pub fn journal_csv_rows(entry: &EntryView) -> String {
    let payment = entry
        .payment_id
        .map(|id| id.to_string())
        .unwrap_or_default();
    entry
        .lines
        .iter()
        .map(|line| {
            format!(
                "{},{},{},{},{},{},{},{},{}\n",
                entry.id,
                entry.kind.as_str(),
                entry.booking_date,
                entry.value_date,
                entry.loan_id,
                payment,
                line.account,
                line.debit,
                line.credit
            )
        })
        .collect()
}
