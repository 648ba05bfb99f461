//! Four eyes: decisions that take two people (API.md § Four eyes). The
//! requests the rule covers — a large approval, a reversal when so
//! configured, every write-off — open a decision instead of acting; another
//! ADMIN confirms it (the request then runs, as of now) or someone rejects
//! it (recorded, never deleted).

pub mod domain;
pub mod handlers;
pub mod service;
pub mod views;
