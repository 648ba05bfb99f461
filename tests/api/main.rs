//! The integration tests: one binary, the real router, a fresh database
//! per test (SQLite, or PostgreSQL when `TEST_DATABASE_URL` is set).

mod audit;
mod auth;
mod backup;
mod books;
mod connections;
mod console;
mod console_browser;
mod decisions;
mod exact_money;
mod http;
mod integrators;
mod jobs;
mod loans;
mod notifications;
mod operations;
mod payments;
mod portfolio;
mod processes;
mod reliability;
mod replica;
mod scale;
mod servicing;
mod settlement;
mod structure;
mod support;
mod users;
mod webdriver;
