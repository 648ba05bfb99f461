//! Loan Tracker: a loan-servicing backend.
//!
//! People register and apply for loans; staff approve them; borrowers repay
//! in monthly installments. See `docs/api.md` for the HTTP contract
//! and the README for running it.

pub mod app;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod cache;
pub mod calendar;
pub mod clock;
pub mod config;
pub mod console;
pub mod db;
pub mod decisions;
pub mod enums;
pub mod http;
pub mod jobs;
pub mod journal;
pub mod ledger;
pub mod loans;
pub mod log_sink;
pub mod metrics;
pub mod money;
pub mod notifications;
pub mod payments;
pub mod policy;
pub mod read_routing;
pub mod redis;
pub mod reports;
pub mod router;
pub mod schedule;
pub mod server;
pub mod servicing;
pub mod startup;
pub mod users;
pub mod worker;
