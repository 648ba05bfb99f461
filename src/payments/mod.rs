//! Payments: recording repayments atomically and idempotently (alone or
//! combined several to a transaction), reversals, payoff quotes, payment
//! history, and the overdue list.

pub mod combining;
pub mod domain;
pub mod handlers;
pub mod idempotency;
pub mod queue;
pub mod recording;
pub mod service;
pub mod views;
