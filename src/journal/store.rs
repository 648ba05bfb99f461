//! Writing entries: the entry rows (each with its lines, as one signed
//! amount per account) and the daily totals the trial balance sums, all
//! in the batch of the transaction that posts them.
//!
//! The totals are kept per (booking day, slot), a debit and a credit
//! column per account. One row per day would be a row every concurrent
//! payment must update, and they would all wait on it in turn until each
//! commits; so each transaction takes a slot of its own (the next of a
//! few, round robin in this process, from a random start so that
//! instances differ), and a day's balance is the sum of its slots. A
//! transaction writes its slot's row once, whatever the number of entries
//! and accounts: a plain update, or an upsert when the day's slot has no
//! row yet.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query, UpdateStatement};
use sea_orm::{ColumnTrait, EntityTrait, QueryTrait};
use uuid::Uuid;

use super::accounts::Account;
use super::posting::{Line, NewEntry};
use crate::db::batch::WriteBatch;
use crate::db::entities::{journal_day_total, journal_entry};
use crate::money::Money;

/// How many rows a day's totals are spread over.
pub const SLOTS: u32 = 16;

static NEXT_SLOT: LazyLock<AtomicU32> =
    LazyLock::new(|| AtomicU32::new(rand::random::<u32>() % SLOTS));

/// The slot of the next posting transaction.
pub fn next_slot() -> i32 {
    let slot = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % SLOTS;
    i32::try_from(slot).unwrap_or(0)
}

/// An entry with what posting it adds: its currency.
#[derive(Debug, Clone)]
pub struct EntryToPost {
    pub entry: NewEntry,
    pub currency: String,
}

/// When and where entries are posted.
#[derive(Debug, Clone, Copy)]
pub struct PostingDay {
    pub booking_date: NaiveDate,
    pub posted_at: DateTime<Utc>,
    pub slot: i32,
}

/// Adds the rows of `entries` and the change of the day's totals to
/// `batch`: one row per entry and one totals row, whatever accounts they
/// touch. Entries are numbered (their ids, time-ordered) in the order
/// given: that is their posting order.
pub fn push(batch: &mut WriteBatch, entries: Vec<EntryToPost>, day: PostingDay) {
    if entries.is_empty() {
        return;
    }
    let mut totals = [(Money::ZERO, Money::ZERO); 6];
    let mut rows = Vec::with_capacity(entries.len());
    for EntryToPost { entry, currency } in entries {
        for line in &entry.lines {
            let total = &mut totals[line.account.position()];
            total.0 += line.debit;
            total.1 += line.credit;
        }
        rows.push(journal_entry::ActiveModel::from(entry_row(
            &entry, currency, day,
        )));
    }
    for chunk in rows.chunks(crate::db::rows_per_statement(batch.backend(), 14)) {
        batch.insert(journal_entry::Entity::insert_many(chunk.to_vec()).into_query());
    }
    batch.update_or_insert(
        totals_updated(totals, day),
        Box::new(move || totals_added(totals, day).into_query()),
    );
}

/// The lines of a stored entry, in the chart's code order.
pub fn lines_of(row: &journal_entry::Model) -> Vec<Line> {
    Account::ALL
        .into_iter()
        .zip(row.amounts())
        .filter_map(|(account, net)| Line::of_signed(account, Money::from_minor(net)))
        .collect()
}

/// The row of `entry`: each account's line as its signed amount.
fn entry_row(entry: &NewEntry, currency: String, day: PostingDay) -> journal_entry::Model {
    let mut amounts = [0_i64; 6];
    for line in &entry.lines {
        amounts[line.account.position()] += line.signed().minor();
    }
    let [
        cash_minor,
        loans_receivable_minor,
        interest_income_minor,
        fee_income_minor,
        recoveries_minor,
        loan_losses_minor,
    ] = amounts;
    journal_entry::Model {
        id: Uuid::now_v7(),
        kind: entry.kind,
        loan_id: entry.loan_id,
        payment_id: entry.payment_id,
        booking_date: day.booking_date,
        value_date: entry.value_date,
        posted_at: day.posted_at,
        currency,
        cash_minor,
        loans_receivable_minor,
        interest_income_minor,
        fee_income_minor,
        recoveries_minor,
        loan_losses_minor,
    }
}

/// `UPDATE` adding `totals` (debit, credit per account, in code order) to
/// the day's row of the slot, when it exists (every posting of the day
/// after the slot's first).
fn totals_updated(totals: [(Money, Money); 6], day: PostingDay) -> UpdateStatement {
    let added = Account::ALL
        .into_iter()
        .zip(totals)
        .flat_map(|(account, (debit, credit))| {
            account.day_total_columns().into_iter().zip([debit, credit])
        })
        .map(|(column, amount)| {
            let column = Alias::new(column);
            (column.clone(), Expr::col(column).add(amount.minor()))
        });
    Query::update()
        .table(journal_day_total::Entity)
        .values(added)
        .and_where(journal_day_total::Column::BookingDate.eq(day.booking_date))
        .and_where(journal_day_total::Column::Slot.eq(day.slot))
        .to_owned()
}

/// `INSERT … ON CONFLICT DO UPDATE` adding `totals` (debit, credit per
/// account, in code order) to the day's row of the slot, or making it.
fn totals_added(
    totals: [(Money, Money); 6],
    day: PostingDay,
) -> sea_orm::Insert<journal_day_total::ActiveModel> {
    let row = journal_day_total::Model::of(
        day.booking_date,
        day.slot,
        totals.map(|(debit, credit)| (debit.minor(), credit.minor())),
    );
    let added = Account::ALL
        .into_iter()
        .flat_map(Account::day_total_columns)
        .map(|column| {
            let sum = format!("journal_day_totals.{column} + excluded.{column}");
            (Alias::new(column), Expr::cust(sum))
        });
    journal_day_total::Entity::insert(journal_day_total::ActiveModel::from(row)).on_conflict(
        OnConflict::columns([
            journal_day_total::Column::BookingDate,
            journal_day_total::Column::Slot,
        ])
        .values(added)
        .to_owned(),
    )
}
