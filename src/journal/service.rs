//! Reading the books (the trial balance, the journal and its CSV) and
//! closing them.

use chrono::NaiveDate;
use futures_util::Stream;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};
use serde_json::json;
use uuid::Uuid;

use super::accounts::Account;
use super::views::{
    AccountBalance, ClosingView, EntryView, JOURNAL_CSV_HEADER, TrialBalance, journal_csv_rows,
};
use crate::app::AppState;
use crate::audit::{self, AuditAction, AuditEntry, RequestMeta};
use crate::db::entities::{books, journal_entry, payment};
use crate::enums::EntryKind;
use crate::http::pagination::{Page, PageRequest};
use crate::money::Money;
use crate::policy::{CloseBooks, Permit};

/// The trial balance as of `as_of`: every account's debits and credits
/// booked on or before it, summed from the daily totals (a row per slot
/// and day), never from the entries.
pub async fn trial_balance(
    connection: &impl ConnectionTrait,
    as_of: NaiveDate,
    currency: &str,
) -> Result<TrialBalance, DbErr> {
    let backend = connection.get_database_backend();
    let placeholder = if backend == sea_orm::DatabaseBackend::Postgres {
        "$1"
    } else {
        "?"
    };
    // Σ of each account's debit and credit columns over the days' rows.
    let sums: Vec<String> = Account::ALL
        .into_iter()
        .flat_map(Account::day_total_columns)
        .map(|column| format!("CAST(COALESCE(SUM({column}), 0) AS BIGINT) AS {column}"))
        .collect();
    let row = connection
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT {} FROM journal_day_totals WHERE booking_date <= {placeholder}",
                sums.join(", ")
            ),
            [as_of.into()],
        ))
        .await?;
    let mut accounts = Vec::with_capacity(Account::ALL.len());
    for account in Account::ALL {
        let [debits, credits] = account.day_total_columns();
        let sum = |column: &str| -> Result<Money, DbErr> {
            Ok(Money::from_minor(match &row {
                Some(row) => row.try_get("", column)?,
                None => 0,
            }))
        };
        accounts.push(AccountBalance::new(account, sum(&debits)?, sum(&credits)?));
    }
    Ok(TrialBalance {
        as_of,
        currency: currency.to_owned(),
        total_debit: accounts.iter().map(|a| a.debit).sum(),
        total_credit: accounts.iter().map(|a| a.credit).sum(),
        accounts,
    })
}

/// Which entries a journal list shows (booking dates inclusive).
#[derive(Debug, Clone, Copy, Default)]
pub struct JournalFilter {
    pub loan_id: Option<Uuid>,
    pub payment_id: Option<Uuid>,
    pub kind: Option<EntryKind>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

/// The entries `filter` selects after `after`, in posting order, at most
/// `limit`.
async fn entries(
    connection: &impl ConnectionTrait,
    filter: JournalFilter,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<EntryView>, DbErr> {
    let mut query = journal_entry::Entity::find()
        .order_by_asc(journal_entry::Column::Id)
        .limit(limit);
    let mut loan_id = filter.loan_id;
    if let Some(payment_id) = filter.payment_id {
        // Through the payment's loan, whose entries are indexed.
        let payment_loan = payment::Entity::find_by_id(payment_id)
            .one(connection)
            .await?
            .map(|payment| payment.loan_id);
        if payment_loan.is_none() || loan_id.is_some_and(|id| Some(id) != payment_loan) {
            return Ok(Vec::new());
        }
        loan_id = payment_loan;
        query = query.filter(journal_entry::Column::PaymentId.eq(payment_id));
    }
    if let Some(loan_id) = loan_id {
        query = query.filter(journal_entry::Column::LoanId.eq(loan_id));
    }
    if let Some(kind) = filter.kind {
        query = query.filter(journal_entry::Column::Kind.eq(kind));
    }
    if let Some(from) = filter.from {
        query = query.filter(journal_entry::Column::BookingDate.gte(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(journal_entry::Column::BookingDate.lte(to));
    }
    if let Some(after) = after {
        query = query.filter(journal_entry::Column::Id.gt(after));
    }
    let rows = query.all(connection).await?;
    Ok(rows.into_iter().map(EntryView::new).collect())
}

/// A page of the journal, oldest first.
pub async fn list(
    connection: &impl ConnectionTrait,
    filter: JournalFilter,
    page: &PageRequest,
    after: Option<Uuid>,
) -> Result<Page<EntryView>, DbErr> {
    let rows = entries(connection, filter, after, page.fetch_limit()).await?;
    Ok(Page::from_rows(
        rows,
        page,
        |entry| vec![entry.id.to_string()],
        |entry| entry,
    ))
}

/// Entries read per round trip while streaming the CSV.
const CSV_CHUNK: u64 = 500;

/// Every line `filter` selects as CSV, header first, a chunk of entries
/// at a time: what is held in memory is one chunk, however long the
/// journal.
pub fn csv_stream(
    database: DatabaseConnection,
    filter: JournalFilter,
) -> impl Stream<Item = Result<String, DbErr>> {
    enum Next {
        Header,
        After(Option<Uuid>),
        Done,
    }
    futures_util::stream::unfold(Next::Header, move |next| {
        let database = database.clone();
        async move {
            let after = match next {
                Next::Done => return None,
                Next::Header => {
                    return Some((Ok(JOURNAL_CSV_HEADER.to_owned()), Next::After(None)));
                }
                Next::After(after) => after,
            };
            match entries(&database, filter, after, CSV_CHUNK).await {
                Err(error) => Some((Err(error), Next::Done)),
                Ok(chunk) if chunk.is_empty() => None,
                Ok(chunk) => {
                    let last = chunk.last().map(|entry| entry.id);
                    let text: String = chunk.iter().map(journal_csv_rows).collect();
                    Some((Ok(text), Next::After(last)))
                }
            }
        }
    })
}

/// The date the books are closed through, if they ever were.
pub async fn closed_through(connection: &impl ConnectionTrait) -> Result<Option<NaiveDate>, DbErr> {
    Ok(books::Entity::find_by_id(1)
        .one(connection)
        .await?
        .and_then(|row| row.closed_through))
}

/// Why the books cannot be closed through a date.
#[derive(Debug, thiserror::Error)]
pub enum BooksError {
    #[error("the books can be closed only through a day before today ({today})")]
    NotBeforeToday { today: NaiveDate },
    #[error("the books are closed through {closed_through}; they are never reopened")]
    Reopening { closed_through: NaiveDate },
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// Closes the books through `through` (ADMIN): from then on nothing may be
/// valued on or before it. Closing through the date already closed changes
/// nothing; an earlier one would reopen days and is refused.
pub async fn close(
    state: &AppState,
    permit: Permit<CloseBooks>,
    meta: &RequestMeta,
    through: NaiveDate,
) -> Result<ClosingView, BooksError> {
    let today = state.today();
    if through >= today {
        return Err(BooksError::NotBeforeToday { today });
    }
    let transaction = state.db.begin_write().await?;
    // Locked: a backdated payment reads this row shared, so it is valued
    // either before the close or against the closed date.
    let previous = books::Entity::find_by_id(1)
        .lock_exclusive()
        .one(&transaction)
        .await?
        .and_then(|row| row.closed_through);
    match previous {
        Some(closed) if through < closed => {
            return Err(BooksError::Reopening {
                closed_through: closed,
            });
        }
        Some(closed) if through == closed => {
            return Ok(ClosingView {
                closed_through: Some(closed),
            });
        }
        _ => {}
    }
    books::Entity::update_many()
        .col_expr(
            books::Column::ClosedThrough,
            sea_orm::sea_query::Expr::value(through),
        )
        .filter(books::Column::Id.eq(1))
        .exec(&transaction)
        .await?;
    audit::record(
        &transaction,
        AuditEntry::new(AuditAction::BooksClosed, Some(permit.actor().id))
            .details(json!({ "through": through, "previous": previous })),
        Some(meta),
        state.now(),
    )
    .await?;
    transaction.commit().await?;
    Ok(ClosingView {
        closed_through: Some(through),
    })
}
