//! The schema, as one ordered list of migrations shared by SQLite and
//! PostgreSQL. Migrations are append-only once they have landed on `main`.

use sea_orm_migration::prelude::*;

mod m20261125_000001_initial_schema;
mod m20261127_000001_user_change_notices;
mod m20261128_000001_servicing_ledger;
mod m20261129_000001_installment_identity;
mod m20261130_000001_delinquency;
mod m20261201_000001_leaner_write_indexes;
mod m20261207_000001_journal;
mod m20261208_000001_decisions_and_write_off;
mod m20261209_000001_journal_lines_in_entries;
mod m20261210_000001_room_for_hot_updates;
mod m20261211_000001_full_installment_pages;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_initial_schema::Migration),
            Box::new(m20261127_000001_user_change_notices::Migration),
            Box::new(m20261128_000001_servicing_ledger::Migration),
            Box::new(m20261129_000001_installment_identity::Migration),
            Box::new(m20261130_000001_delinquency::Migration),
            Box::new(m20261201_000001_leaner_write_indexes::Migration),
            Box::new(m20261207_000001_journal::Migration),
            Box::new(m20261208_000001_decisions_and_write_off::Migration),
            Box::new(m20261209_000001_journal_lines_in_entries::Migration),
            Box::new(m20261210_000001_room_for_hot_updates::Migration),
            Box::new(m20261211_000001_full_installment_pages::Migration),
        ]
    }
}

/// The names of every migration this binary knows, in order.
pub fn names() -> Vec<String> {
    Migrator::migrations()
        .iter()
        .map(|migration| migration.name().to_owned())
        .collect()
}

/// The few column types whose spelling differs between the two databases.
/// Everything else in our DDL is common SQL.
pub(crate) struct Dialect {
    pub uuid: &'static str,
    pub timestamp: &'static str,
    pub date: &'static str,
    pub json: &'static str,
    pub now: &'static str,
}

impl Dialect {
    pub fn for_backend(backend: sea_orm::DatabaseBackend) -> Dialect {
        match backend {
            sea_orm::DatabaseBackend::Postgres => Dialect {
                uuid: "UUID",
                timestamp: "TIMESTAMPTZ",
                date: "DATE",
                json: "JSONB",
                now: "now()",
            },
            // SQLite keeps UUIDs as 16-byte blobs (sqlx's encoding), dates and
            // timestamps as ISO-8601 text, which sorts chronologically.
            _ => Dialect {
                uuid: "BLOB",
                timestamp: "TEXT",
                date: "TEXT",
                json: "TEXT",
                now: "(strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))",
            },
        }
    }

    /// Substitutes `{uuid}`, `{ts}`, `{date}`, `{json}` and `{now}`.
    pub fn render(&self, sql: &str) -> String {
        sql.replace("{uuid}", self.uuid)
            .replace("{ts}", self.timestamp)
            .replace("{date}", self.date)
            .replace("{json}", self.json)
            .replace("{now}", self.now)
    }
}
