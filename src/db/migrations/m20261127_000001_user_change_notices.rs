//! On PostgreSQL, every change to a user's row that a cached copy could
//! miss (a deletion, a role change — made through the API or not) is
//! announced on the `loan_tracker_user_changed` channel with the user's
//! id, so that every instance drops its cached copy at once. SQLite has no
//! such channel; there the service reads the user's row on every request.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: [&str; 2] = [
    r"CREATE FUNCTION loan_tracker_notify_user_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('loan_tracker_user_changed', OLD.id::text);
    RETURN NULL;
END;
$$",
    r"CREATE TRIGGER users_changed_notice
    AFTER DELETE OR UPDATE OF role, id ON users
    FOR EACH ROW EXECUTE FUNCTION loan_tracker_notify_user_changed()",
];

const DOWN: [&str; 2] = [
    "DROP TRIGGER IF EXISTS users_changed_notice ON users",
    "DROP FUNCTION IF EXISTS loan_tracker_notify_user_changed()",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_on_postgres(manager, &UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_on_postgres(manager, &DOWN).await
    }
}

async fn run_on_postgres(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        return Ok(());
    }
    for statement in statements {
        manager
            .get_connection()
            .execute_unprepared(statement)
            .await?;
    }
    Ok(())
}
