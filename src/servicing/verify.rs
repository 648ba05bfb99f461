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
    let history = History::load(connection, &loan, context.timezone).await?;
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
    differences.extend(journal_differences(connection, &loan).await?);
    Ok(differences)
}

/// The loan's journal against the loan as stored (see
/// [`journal_differences`]); empty when they agree.
pub async fn verify_journal(
    connection: &impl ConnectionTrait,
    loan_id: Uuid,
) -> Result<Vec<String>, ServicingError> {
    let loan = loan::Entity::find_by_id(loan_id)
        .one(connection)
        .await?
        .ok_or(ServicingError::LoanNotFound)?;
    journal_differences(connection, &loan).await
}

/// The loan's journal against the loan: every entry balances; each
/// payment's lines add up to its current portions (cash to its amount,
/// both zero once reversed); and what the loan's entries leave in loans
/// receivable is its unpaid principal.
async fn journal_differences(
    connection: &impl ConnectionTrait,
    loan: &loan::Model,
) -> Result<Vec<String>, ServicingError> {
    use crate::db::entities::{journal_entry, payment};
    use sea_orm::{ColumnTrait, QueryFilter};
    let entries = journal_entry::Entity::find()
        .filter(journal_entry::Column::LoanId.eq(loan.id))
        .all(connection)
        .await?;
    // Per entry Σ debit − Σ credit; per payment and account, the net.
    let mut unbalanced: HashMap<Uuid, i64> = HashMap::new();
    let mut booked: HashMap<(Option<Uuid>, String), i64> = HashMap::new();
    for entry in &entries {
        for line in crate::journal::store::lines_of(entry) {
            let net = line.signed().minor();
            *unbalanced.entry(entry.id).or_default() += net;
            *booked
                .entry((entry.payment_id, line.account.code().to_owned()))
                .or_default() += net;
        }
    }
    let mut differences: Vec<String> = unbalanced
        .iter()
        .filter(|(_, net)| **net != 0)
        .map(|(entry, net)| format!("journal entry {entry} does not balance by {net}"))
        .collect();
    let payments = payment::Entity::find()
        .filter(payment::Column::LoanId.eq(loan.id))
        .all(connection)
        .await?;
    differences.extend(payment_differences(&payments, &booked));
    if loan.approved_at.is_some() {
        let receivable: i64 = booked
            .iter()
            .filter(|((_, account), _)| account == "1100")
            .map(|(_, net)| *net)
            .sum();
        // Written off, nothing is receivable any more.
        let unpaid = if loan.status == crate::db::entities::LoanStatus::WrittenOff {
            0
        } else {
            loan.principal_minor - loan.principal_paid_minor
        };
        if receivable != unpaid {
            differences.push(format!(
                "loan: loans receivable {receivable} in the journal, unpaid principal {unpaid}"
            ));
        }
    }
    differences.sort();
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

/// Each payment's journal lines against its current portions (cash
/// against its amount; all zero once reversed). `booked` is the net
/// (debit − credit) per payment and account.
fn payment_differences(
    payments: &[crate::db::entities::payment::Model],
    booked: &HashMap<(Option<Uuid>, String), i64>,
) -> Vec<String> {
    use crate::db::entities::PaymentStatus;
    let net = |payment: Option<Uuid>, account: &str| {
        booked
            .get(&(payment, account.to_owned()))
            .copied()
            .unwrap_or(0)
    };
    let mut differences = Vec::new();
    for payment in payments {
        let posted = payment.status == PaymentStatus::Posted;
        let cash = if posted { payment.amount_minor } else { 0 };
        // A recovery is booked whole to recoveries, whatever its portions.
        let wanted = if super::is_recovery(payment) {
            (cash, 0, 0, 0, cash)
        } else {
            (
                cash,
                payment.current_principal_minor,
                payment.current_interest_minor,
                payment.current_penalty_minor,
                0,
            )
        };
        let found = (
            net(Some(payment.id), "1000"),
            -net(Some(payment.id), "1100"),
            -net(Some(payment.id), "4000"),
            -net(Some(payment.id), "4100"),
            -net(Some(payment.id), "4200"),
        );
        if found != wanted {
            differences.push(format!(
                "payment {}: journal books (cash, principal, interest, fees, recoveries) {found:?}, portions {wanted:?}",
                payment.id
            ));
        }
    }
    differences
}
