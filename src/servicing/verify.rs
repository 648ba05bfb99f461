//! A check of the books: what is stored of a loan against a fresh replay
//! of its history, for tests and operators.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, EntityTrait};
use uuid::Uuid;

use super::load::{History, installments_of};
use super::rows::{ledger_figures, loan_changed, reconcile};
use super::{ServicingContext, ServicingError};
use crate::db::entities::{installment, loan};
use crate::ledger::replay::{LedgerState, replay};

/// The differences between what is stored of a loan and a fresh replay of
/// its history as of today (empty when they agree).
pub async fn verify_books(
    connection: &impl ConnectionTrait,
    context: &ServicingContext,
    loan_id: Uuid,
) -> Result<Vec<String>, ServicingError> {
    let loan = loan::Entity::find_by_id(loan_id)
        .one(connection)
        .await?
        .ok_or(ServicingError::LoanNotFound)?;
    let rows = installments_of(connection, loan_id).await?;
    let history = History::load(connection, &loan).await?;
    let today = context.today();
    let replayed = replay(
        &history.approved,
        history.terms,
        &history.postings(),
        today,
        context.late_fee,
    )
    .map_err(super::rows::ReconcileError::from)?;
    if replayed.installments.len() != rows.len() {
        return Ok(vec![format!(
            "{} installments stored, {} replayed",
            rows.len(),
            replayed.installments.len()
        )]);
    }
    let reconciliation = reconcile(
        &loan,
        &rows,
        &replayed,
        today,
        context.now(),
        &HashMap::new(),
    )
    .map_err(super::rows::ReconcileError::from)?;
    let mut differences = installment_differences(&rows, &reconciliation.rows);
    if loan_changed(&loan, &reconciliation.loan) {
        differences.push(format!(
            "loan: stored {:?}, replayed {:?}",
            ledger_figures(&loan),
            ledger_figures(&reconciliation.loan)
        ));
    }
    differences.extend(portion_differences(&history, &replayed));
    Ok(differences)
}

fn installment_differences(
    stored: &[installment::Model],
    replayed: &[installment::Model],
) -> Vec<String> {
    let ledger_fields = |r: &installment::Model| {
        (
            r.number,
            r.due_date,
            r.principal_minor,
            r.interest_minor,
            r.penalty_minor,
            r.principal_paid_minor,
            r.interest_paid_minor,
            r.penalty_paid_minor,
            r.status,
        )
    };
    stored
        .iter()
        .zip(replayed)
        .filter(|(row, after)| ledger_fields(row) != ledger_fields(after))
        .map(|(row, after)| {
            format!(
                "installment {}: stored {:?}, replayed {:?}",
                row.number,
                ledger_fields(row),
                ledger_fields(after)
            )
        })
        .collect()
}

fn portion_differences(history: &History, replayed: &LedgerState) -> Vec<String> {
    history
        .payments
        .iter()
        .filter_map(|payment| {
            let replayed_portions = replayed.split_of(payment.id).map(|split| {
                (
                    split.principal.minor(),
                    split.interest.minor(),
                    split.penalty.minor(),
                )
            });
            let stored = (
                payment.current_principal_minor,
                payment.current_interest_minor,
                payment.current_penalty_minor,
            );
            (replayed_portions != Some(stored)).then(|| {
                format!(
                    "payment {}: stored portions {stored:?}, replayed {replayed_portions:?}",
                    payment.id
                )
            })
        })
        .collect()
}
