//! `loan-tracker replay --all`: every active loan replayed once through
//! the servicing pipeline, so that after an upgrade the whole book follows
//! the rules of this version (fees an earlier version charged by other
//! rules are charged or waived as the replay decides, each audited; the
//! journal adjusts what moved). Loans already right are read and left as
//! they are. One transaction per loan; a loan that cannot be replayed is
//! reported and left as it was.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;
use uuid::Uuid;

use crate::app::AppState;
use crate::cache::CacheKind;
use crate::db::batch::WriteBatch;
use crate::db::entities::loan;
use crate::servicing::{self, Event, Requester};

/// Loans whose ids are read per query.
const IDS_PER_QUERY: u64 = 1000;

/// What a replay of the book did.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    /// Active loans replayed.
    pub loans: u64,
    /// Of them, the loans the replay changed.
    pub loans_changed: u64,
    pub fees_charged: u64,
    pub fees_waived: u64,
    /// Payments whose portions moved (each booked as an adjustment).
    pub payments_reallocated: u64,
    /// Loans whose history could not be replayed, left as they were.
    pub failed: Vec<Uuid>,
    pub seconds: f64,
}

/// Replays every loan that is `APPROVED` or `OVERDUE` now, in id order.
pub async fn replay_active_loans(state: &AppState) -> Result<ReplayReport, sea_orm::DbErr> {
    let started = std::time::Instant::now();
    let mut report = ReplayReport::default();
    let mut after: Option<Uuid> = None;
    loop {
        let mut query = loan::Entity::find()
            .select_only()
            .column(loan::Column::Id)
            .filter(loan::is_active())
            .order_by_asc(loan::Column::Id)
            .limit(IDS_PER_QUERY);
        if let Some(after) = after {
            query = query.filter(loan::Column::Id.gt(after));
        }
        let ids: Vec<Uuid> = query.into_tuple().all(&state.db.write).await?;
        let Some(last) = ids.last() else {
            break;
        };
        after = Some(*last);
        for loan_id in ids {
            replay_one(state, loan_id, &mut report).await?;
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

async fn replay_one(
    state: &AppState,
    loan_id: Uuid,
    report: &mut ReplayReport,
) -> Result<(), sea_orm::DbErr> {
    let transaction = state.db.begin_write().await?;
    let mut batch = WriteBatch::for_connection(&transaction);
    let requester = Requester {
        actor_id: None,
        meta: None,
    };
    let applied = servicing::apply(
        &transaction,
        &mut batch,
        &state.servicing(),
        loan_id,
        Event::Replay,
        requester,
    )
    .await;
    report.loans += 1;
    let applied = match applied {
        Ok(applied) => applied,
        Err(servicing::ServicingError::Database(error)) => return Err(error),
        Err(error) => {
            tracing::warn!(%loan_id, %error, "replay: loan left as it was");
            report.failed.push(loan_id);
            return Ok(());
        }
    };
    batch.execute(&transaction).await?;
    transaction.commit().await?;
    let charged = applied.fees.iter().filter(|fee| fee.is_charged()).count() as u64;
    report.fees_charged += charged;
    report.fees_waived += applied.fees.len() as u64 - charged;
    report.payments_reallocated += applied.portions.len() as u64;
    if !applied.fees.is_empty() || !applied.portions.is_empty() {
        report.loans_changed += 1;
        state.cache.invalidate(CacheKind::Loan, loan_id).await;
    }
    Ok(())
}
