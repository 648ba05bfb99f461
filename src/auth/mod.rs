//! Authentication: accounts signing in, tokens, and the [`actor::Actor`]
//! extractor that every protected handler takes.

pub mod actor;
pub mod handlers;
pub mod password;
pub mod service;
pub mod tokens;
pub mod user_changes;
