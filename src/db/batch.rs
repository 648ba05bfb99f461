//! Writes that go to the database together, in the order they were made.
//!
//! A payment's writes after its read (installments, the loan, the payment,
//! its allocations, the notices, the audit entries, the stored response)
//! depend on nothing the database answers, so they need not wait for each
//! other. On PostgreSQL a batch travels as one statement of data-modifying
//! common table expressions (`WITH w0 AS (UPDATE …), w1 AS (INSERT …)
//! INSERT …`): one round trip, one prepared statement, instead of one of
//! each per write, while the loan's lock is held. On SQLite, which runs in
//! the process, each write is its own statement: there is no round trip to
//! save, and SQLite allows no writes inside `WITH`.
//!
//! The statements of one PostgreSQL batch run on one snapshot, in no
//! guaranteed order, so a batch must not write the same row twice nor
//! depend on another of its writes, except through foreign keys, which are
//! checked when the whole statement ends (an allocation may name the
//! payment inserted beside it). A `DELETE` is sent on its own, after the
//! writes before it and before those after it, so that rows may be
//! deleted and written again in one batch.

use std::fmt::Write as _;

use sea_orm::sea_query::{
    DeleteStatement, InsertStatement, PostgresQueryBuilder, SqlWriterValues, UpdateStatement,
    Values,
};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

/// Writes collected for one trip to the database.
pub struct WriteBatch {
    backend: DbBackend,
    writes: Vec<Write>,
    /// An update of a row that may not exist yet, sent after every other
    /// write, and the upsert that adds the row when the update found none.
    update_or_insert: Option<(UpdateStatement, Upsert)>,
}

/// The upsert of an update-or-insert pair, made only if it is sent: the
/// update nearly always finds its row.
pub type Upsert = Box<dyn FnOnce() -> InsertStatement + Send>;

impl std::fmt::Debug for WriteBatch {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WriteBatch")
            .field("backend", &self.backend)
            .field("writes", &self.writes)
            .field(
                "update_or_insert",
                &self.update_or_insert.as_ref().map(|(update, _)| update),
            )
            .finish()
    }
}

#[derive(Debug)]
enum Write {
    Insert(InsertStatement),
    Update(UpdateStatement),
    Delete(DeleteStatement),
}

impl From<InsertStatement> for Write {
    fn from(statement: InsertStatement) -> Write {
        Write::Insert(statement)
    }
}

impl From<UpdateStatement> for Write {
    fn from(statement: UpdateStatement) -> Write {
        Write::Update(statement)
    }
}

impl From<DeleteStatement> for Write {
    fn from(statement: DeleteStatement) -> Write {
        Write::Delete(statement)
    }
}

impl Write {
    /// Appends the statement to `sql` in PostgreSQL's dialect, its
    /// placeholders numbered on from those already there.
    fn append_to(&self, sql: &mut SqlWriterValues) {
        match self {
            Write::Insert(statement) => statement.build_collect_into(PostgresQueryBuilder, sql),
            Write::Update(statement) => statement.build_collect_into(PostgresQueryBuilder, sql),
            Write::Delete(statement) => statement.build_collect_into(PostgresQueryBuilder, sql),
        }
    }
}

impl WriteBatch {
    /// An empty batch for `connection`'s database.
    pub fn for_connection(connection: &impl ConnectionTrait) -> WriteBatch {
        WriteBatch {
            backend: connection.get_database_backend(),
            writes: Vec::new(),
            update_or_insert: None,
        }
    }

    /// The database the statements are for (to size multi-row inserts).
    pub fn backend(&self) -> DbBackend {
        self.backend
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.update_or_insert.is_none()
    }

    pub fn insert(&mut self, statement: InsertStatement) {
        self.writes.push(statement.into());
    }

    pub fn update(&mut self, statement: UpdateStatement) {
        self.writes.push(statement.into());
    }

    pub fn delete(&mut self, statement: DeleteStatement) {
        self.writes.push(statement.into());
    }

    /// Adds `update`, of one row that usually exists, and `upsert`, which
    /// adds to the row or makes it (`INSERT … ON CONFLICT DO UPDATE`, as
    /// another transaction may make it meanwhile) and is sent, in a
    /// statement of its own, only when `update` found no row.
    ///
    /// A plain update is the cheaper write: an upsert first probes the
    /// unique index, then locks the row it found (a write-ahead log record
    /// of its own) and only then updates it. The update is sent last, so
    /// that the count the database answers for the batch is its own.
    /// A batch holds one such pair; an earlier one is sent as its upsert.
    pub fn update_or_insert(&mut self, update: UpdateStatement, upsert: Upsert) {
        if let Some((_, earlier)) = self.update_or_insert.replace((update, upsert)) {
            self.writes.push(earlier().into());
        }
    }

    /// Sends every write, on `connection` (normally the transaction the
    /// batch's reads were made in).
    pub async fn execute(self, connection: &impl ConnectionTrait) -> Result<(), DbErr> {
        let backend = self.backend;
        let mut group = Vec::new();
        for write in self.writes {
            if let Write::Delete(statement) = write {
                execute_group(connection, backend, std::mem::take(&mut group)).await?;
                connection.execute(&statement).await?;
            } else {
                group.push(write);
            }
        }
        let Some((update, upsert)) = self.update_or_insert else {
            execute_group(connection, backend, group).await?;
            return Ok(());
        };
        group.push(update.into());
        if execute_group(connection, backend, group).await? == 0 {
            connection.execute(&upsert()).await?;
        }
        Ok(())
    }
}

/// Writes with no `DELETE` among them: one statement on PostgreSQL (unless
/// it would bind more values than the protocol counts), one each
/// elsewhere. Answers the number of rows the last write touched (a
/// statement of data-modifying `WITH`s counts those of its last one).
async fn execute_group(
    connection: &impl ConnectionTrait,
    backend: DbBackend,
    group: Vec<Write>,
) -> Result<u64, DbErr> {
    if backend == DbBackend::Postgres && group.len() > 1 {
        let (sql, values) = combined(&group);
        if values.0.len() <= super::max_bind_parameters(backend) {
            let statement = Statement::from_sql_and_values(backend, sql, values);
            return Ok(connection.execute_raw(statement).await?.rows_affected());
        }
    }
    let mut last_count = 0;
    for write in group {
        last_count = match write {
            Write::Insert(statement) => connection.execute(&statement).await?,
            Write::Update(statement) => connection.execute(&statement).await?,
            Write::Delete(statement) => connection.execute(&statement).await?,
        }
        .rows_affected();
    }
    Ok(last_count)
}

/// `WITH "w0" AS (first), …, "w{n-2}" AS (second to last) last`, and its
/// values: PostgreSQL runs a data-modifying statement in `WITH` even when
/// nothing reads it. Written straight from the statements, numbering
/// their placeholders on through the whole text, so that the batch's
/// writes are kept as they are (they are sent one by one instead if the
/// whole would bind more values than the protocol counts).
fn combined(group: &[Write]) -> (String, Values) {
    let mut sql = SqlWriterValues::new("$", true);
    if let Some((last, others)) = group.split_last() {
        for (number, write) in others.iter().enumerate() {
            let separator = if number == 0 { "WITH" } else { "," };
            // Writing to a String cannot fail.
            let _ = write!(sql, "{separator} \"w{number}\" AS (");
            write.append_to(&mut sql);
            let _ = sql.write_str(") ");
        }
        last.append_to(&mut sql);
    }
    sql.into_parts()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};

    #[test]
    fn postgres_batches_are_one_statement_of_data_modifying_ctes() {
        let update = Query::update()
            .table(Alias::new("loans"))
            .value(Alias::new("total_paid_minor"), 5)
            .and_where(Expr::col(Alias::new("id")).eq(1))
            .to_owned();
        let insert = Query::insert()
            .into_table(Alias::new("payments"))
            .columns([Alias::new("id"), Alias::new("amount_minor")])
            .values_panic([7.into(), 5.into()])
            .to_owned();
        let insert_two = Query::insert()
            .into_table(Alias::new("audit_logs"))
            .columns([Alias::new("id")])
            .values_panic([9.into()])
            .to_owned();
        let (sql, values) = combined(&[update.into(), insert.into(), insert_two.into()]);
        assert_eq!(
            sql,
            r#"WITH "w0" AS (UPDATE "loans" SET "total_paid_minor" = $1 WHERE "id" = $2) , "w1" AS (INSERT INTO "payments" ("id", "amount_minor") VALUES ($3, $4)) INSERT INTO "audit_logs" ("id") VALUES ($5)"#
        );
        assert_eq!(
            values.0,
            [5, 1, 7, 5, 9]
                .map(sea_orm::sea_query::Value::from)
                .to_vec()
        );
    }
}
