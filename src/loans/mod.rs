//! Loans: application, approval with schedule generation, rejection,
//! cancellation, and the status machine that governs them.

pub mod domain;
pub mod handlers;
pub mod service;
pub mod status;
pub mod views;
