//! Payments: recording repayments atomically and idempotently, payment
//! history, and the overdue list.

pub mod combining;
pub mod handlers;
pub mod idempotency;
pub mod service;
pub mod views;
