//! The books: a double-entry journal that always agrees with the loans
//! (API.md § The books).
//!
//! Every money event the servicing pipeline applies — a loan paid out, a
//! payment recorded or reversed, another payment's portions moved by a
//! replay — is booked in the same transaction, from the pipeline's result
//! ([`posting`] says which lines; [`store`] writes them with the daily
//! totals). Entries are never changed or deleted: a correction is a new
//! entry. The trial balance sums the daily totals; the journal lists
//! entries in posting order, or streams their lines as CSV; closing the
//! books stops anything from being valued into a closed period.

pub mod accounts;
pub mod backfill;
pub mod handlers;
pub mod posting;
pub mod service;
pub mod store;
pub mod views;
