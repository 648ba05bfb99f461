//! The journal of a database that had loans before it had a journal: on
//! the upgrade day, one `DISBURSEMENT` per loan ever approved (valued on
//! its approval date) and one `REPAYMENT` per posted payment (its portions
//! as they stand, valued on its value date), so that the books agree with
//! the loans from the first day. Done once: `books.journal_since` records
//! it, under the books row's lock, so that instances starting together
//! leave one journal.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use uuid::Uuid;

use super::posting::{MoneyEvent, entry_for};
use super::store::{self, EntryToPost, PostingDay};
use crate::db::batch::WriteBatch;
use crate::db::entities::{PaymentStatus, books, loan, payment};
use crate::ledger::Portions;
use crate::money::Money;

/// Rows read and booked per round trip.
const PAGE: u64 = 500;

/// Books the loans and payments of a database whose journal has not been
/// started, on `now`'s day in `timezone`. Does nothing once done.
pub async fn start_journal(
    database: &DatabaseConnection,
    timezone: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let transaction = database.begin().await?;
    let started = books::Entity::find_by_id(1)
        .lock_exclusive()
        .one(&transaction)
        .await?
        .and_then(|row| row.journal_since);
    if started.is_some() {
        return transaction.rollback().await;
    }
    let day = PostingDay {
        booking_date: crate::clock::local_date(now, timezone),
        posted_at: now,
        slot: 0,
    };
    book_disbursements(&transaction, day, timezone).await?;
    book_payments(&transaction, day).await?;
    books::Entity::update_many()
        .col_expr(
            books::Column::JournalSince,
            sea_orm::sea_query::Expr::value(day.booking_date),
        )
        .filter(books::Column::Id.eq(1))
        .exec(&transaction)
        .await?;
    transaction.commit().await
}

/// One `DISBURSEMENT` per loan ever approved, in approval order.
async fn book_disbursements(
    transaction: &sea_orm::DatabaseTransaction,
    day: PostingDay,
    timezone: chrono_tz::Tz,
) -> Result<(), DbErr> {
    let mut after: Option<(DateTime<Utc>, Uuid)> = None;
    loop {
        let mut query = loan::Entity::find()
            .filter(loan::Column::ApprovedAt.is_not_null())
            .order_by_asc(loan::Column::ApprovedAt)
            .order_by_asc(loan::Column::Id)
            .limit(PAGE);
        if let Some((approved_at, id)) = after {
            query = query.filter(
                sea_orm::Condition::any()
                    .add(loan::Column::ApprovedAt.gt(approved_at))
                    .add(
                        sea_orm::Condition::all()
                            .add(loan::Column::ApprovedAt.eq(approved_at))
                            .add(loan::Column::Id.gt(id)),
                    ),
            );
        }
        let loans = query.all(transaction).await?;
        let Some(last) = loans.last() else {
            return Ok(());
        };
        after = last.approved_at.map(|at| (at, last.id));
        let events = loans.iter().filter_map(|loan| {
            Some((
                MoneyEvent::Disbursed {
                    loan_id: loan.id,
                    principal: Money::from_minor(loan.principal_minor),
                    on: crate::clock::local_date(loan.approved_at?, timezone),
                },
                loan.currency.clone(),
            ))
        });
        post(transaction, events, day).await?;
    }
}

/// One `REPAYMENT` per posted payment, in recording order.
async fn book_payments(
    transaction: &sea_orm::DatabaseTransaction,
    day: PostingDay,
) -> Result<(), DbErr> {
    let mut after: Option<(DateTime<Utc>, Uuid)> = None;
    loop {
        let mut query = payment::Entity::find()
            .filter(payment::Column::Status.eq(PaymentStatus::Posted))
            .order_by_asc(payment::Column::CreatedAt)
            .order_by_asc(payment::Column::Id)
            .limit(PAGE);
        if let Some((created_at, id)) = after {
            query = query.filter(
                sea_orm::Condition::any()
                    .add(payment::Column::CreatedAt.gt(created_at))
                    .add(
                        sea_orm::Condition::all()
                            .add(payment::Column::CreatedAt.eq(created_at))
                            .add(payment::Column::Id.gt(id)),
                    ),
            );
        }
        let payments = query.all(transaction).await?;
        let Some(last) = payments.last() else {
            return Ok(());
        };
        after = Some((last.created_at, last.id));
        let events = payments.iter().map(|payment| {
            (
                MoneyEvent::Repaid {
                    loan_id: payment.loan_id,
                    payment_id: payment.id,
                    amount: Money::from_minor(payment.amount_minor),
                    portions: Portions {
                        principal: Money::from_minor(payment.current_principal_minor),
                        interest: Money::from_minor(payment.current_interest_minor),
                        penalty: Money::from_minor(payment.current_penalty_minor),
                    },
                    value_date: payment.value_date,
                },
                payment.currency.clone(),
            )
        });
        post(transaction, events, day).await?;
    }
}

async fn post(
    transaction: &sea_orm::DatabaseTransaction,
    events: impl Iterator<Item = (MoneyEvent, String)>,
    day: PostingDay,
) -> Result<(), DbErr> {
    let mut entries = Vec::new();
    for (event, currency) in events {
        let entry = entry_for(&event, day.booking_date)
            .map_err(|unbalanced| DbErr::Custom(unbalanced.to_string()))?;
        if let Some(entry) = entry {
            entries.push(EntryToPost { entry, currency });
        }
    }
    let mut batch = WriteBatch::for_connection(transaction);
    store::push(&mut batch, entries, day);
    batch.execute(transaction).await
}
