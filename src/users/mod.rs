//! User accounts, roles and profiles.

pub mod domain;
pub mod handlers;
pub mod service;
pub mod views;
