//! The HTTP plumbing shared by every capability: middleware, the
//! problem+json error type, request parsing, pagination, wire formats and
//! the operations endpoints. The routes themselves are assembled in
//! [`crate::router`].

pub mod client_address;
pub mod docs;
pub mod error;
pub mod extract;
pub mod format;
pub mod health;
pub mod json;
pub mod middleware;
pub mod openapi;
pub mod pagination;
pub mod path;
pub mod problems;
pub mod query;
pub mod rate_limit;

/// Request bodies above this size are refused with 413.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;
