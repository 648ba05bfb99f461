//! Writing entries: the entry rows, their lines, and the daily totals the
//! trial balance sums, all in the batch of the transaction that posts
//! them.
//!
//! The totals are kept per (booking day, account, slot). One row per
//! account and day would be a row every concurrent payment must update,
//! and they would all wait on it in turn until each commits; so each
//! transaction takes a slot of its own (the next of a few, round robin in
//! this process, from a random start so that instances differ), and a
//! day's balance is the sum of its slots. Within a transaction, each
//! account's row is written once, whatever the number of entries.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, EntityTrait, QueryTrait};
use uuid::Uuid;

use super::accounts::Account;
use super::posting::NewEntry;
use crate::db::batch::WriteBatch;
use crate::db::entities::{journal_entry, journal_line, journal_total};
use crate::money::Money;

/// How many rows a day's totals of one account are spread over.
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
/// `batch`. Entries are numbered (their ids, time-ordered) in the order
/// given: that is their posting order.
pub fn push(batch: &mut WriteBatch, entries: Vec<EntryToPost>, day: PostingDay) {
    if entries.is_empty() {
        return;
    }
    let mut totals: BTreeMap<Account, (Money, Money)> = BTreeMap::new();
    let mut entry_rows = Vec::with_capacity(entries.len());
    let mut line_rows = Vec::new();
    for EntryToPost { entry, currency } in entries {
        let id = Uuid::now_v7();
        for line in &entry.lines {
            let total = totals.entry(line.account).or_default();
            total.0 += line.debit;
            total.1 += line.credit;
            line_rows.push(journal_line::ActiveModel {
                entry_id: Set(id),
                account: Set(line.account.code().to_owned()),
                debit_minor: Set(line.debit.minor()),
                credit_minor: Set(line.credit.minor()),
            });
        }
        entry_rows.push(journal_entry::ActiveModel {
            id: Set(id),
            kind: Set(entry.kind),
            loan_id: Set(entry.loan_id),
            payment_id: Set(entry.payment_id),
            booking_date: Set(day.booking_date),
            value_date: Set(entry.value_date),
            posted_at: Set(day.posted_at),
            currency: Set(currency),
        });
    }
    let backend = batch.backend();
    for chunk in entry_rows.chunks(crate::db::rows_per_statement(backend, 8)) {
        batch.insert(journal_entry::Entity::insert_many(chunk.to_vec()).into_query());
    }
    for chunk in line_rows.chunks(crate::db::rows_per_statement(backend, 4)) {
        batch.insert(journal_line::Entity::insert_many(chunk.to_vec()).into_query());
    }
    batch.insert(totals_added(&totals, day).into_query());
}

/// `INSERT … ON CONFLICT DO UPDATE` adding `totals` to the day's rows of
/// the slot.
fn totals_added(
    totals: &BTreeMap<Account, (Money, Money)>,
    day: PostingDay,
) -> sea_orm::InsertMany<journal_total::ActiveModel> {
    let rows = totals
        .iter()
        .map(|(account, (debit, credit))| journal_total::ActiveModel {
            booking_date: Set(day.booking_date),
            account: Set(account.code().to_owned()),
            slot: Set(day.slot),
            debit_minor: Set(debit.minor()),
            credit_minor: Set(credit.minor()),
        });
    journal_total::Entity::insert_many(rows).on_conflict(
        OnConflict::columns([
            journal_total::Column::BookingDate,
            journal_total::Column::Account,
            journal_total::Column::Slot,
        ])
        .values([
            (
                journal_total::Column::DebitMinor,
                Expr::cust("journal_totals.debit_minor + excluded.debit_minor"),
            ),
            (
                journal_total::Column::CreditMinor,
                Expr::cust("journal_totals.credit_minor + excluded.credit_minor"),
            ),
        ])
        .to_owned(),
    )
}
