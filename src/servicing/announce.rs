//! What a change to a loan tells the borrower (notifications) and the
//! audit trail, built from what the change did. Every audit entry about a
//! loan's servicing is made here, once.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, AuditAction, AuditEntry, EntityType, RequestMeta};
use crate::db::batch::WriteBatch;
use crate::db::entities::{LoanStatus, loan, payment};
use crate::ledger::PaymentSplit;
use crate::money::{Money, Percent};
use crate::notifications::{self, NewNotification, messages};

use super::rows::{FeeChange, Reconciliation};
use super::{DecisionRef, WriteOff};
use crate::ledger::Owed;

/// Notifications and audit entries, in the order they are written.
#[derive(Debug, Clone, Default)]
pub struct Announcements {
    pub notices: Vec<NewNotification>,
    pub entries: Vec<AuditEntry>,
}

/// Who an announcement is in the name of, and when.
#[derive(Debug, Clone)]
pub struct Attribution {
    pub actor: Option<Uuid>,
    pub meta: Option<RequestMeta>,
    pub at: DateTime<Utc>,
}

impl Announcements {
    pub fn is_empty(&self) -> bool {
        self.notices.is_empty() && self.entries.is_empty()
    }

    pub fn extend(&mut self, other: Announcements) {
        self.notices.extend(other.notices);
        self.entries.extend(other.entries);
    }

    /// Adds the writes to `batch`, in order: notices that must go out once
    /// (a deduplication key) skip one already written.
    pub fn push(self, batch: &mut WriteBatch, by: &Attribution) {
        let mut once = Vec::new();
        for notice in self.notices {
            if notice.dedup_key.is_some() {
                once.push(notice);
            } else {
                notifications::push_many_once(batch, std::mem::take(&mut once), by.at);
                notifications::push(batch, notice, by.at);
            }
        }
        notifications::push_many_once(batch, once, by.at);
        audit::push_many(batch, self.entries, by.meta.as_ref(), by.at);
    }
}

/// What a reconciliation tells: installments newly overdue, fees applied
/// or waived, the loan becoming OVERDUE. (A loan paid off is announced by
/// the payment that did it.)
pub fn of_reconciliation(reconciliation: &Reconciliation, actor: Option<Uuid>) -> Announcements {
    let loan = &reconciliation.loan;
    let mut out = Announcements::default();
    // A written-off loan gets no overdue notices (nor fees, which stop).
    if loan.status == LoanStatus::WrittenOff {
        return out;
    }
    for row in reconciliation
        .newly_overdue
        .iter()
        .filter_map(|index| reconciliation.rows.get(*index))
    {
        out.notices.push(messages::payment_overdue(
            loan,
            row.id,
            row.number,
            row.due_date,
            row.figures().still_owed(),
        ));
    }
    for change in &reconciliation.fees {
        if change.is_charged() {
            out.notices.push(messages::late_fee_applied(
                loan,
                change.installment_id,
                change.number,
                change.due_date,
                change.penalty,
                change.owed,
            ));
        }
        out.entries.push(fee_audit(loan.id, change, actor));
    }
    if loan.status == LoanStatus::Overdue && reconciliation.previous_status != LoanStatus::Overdue {
        out.entries
            .push(loan_overdue(loan.id, reconciliation.today, actor));
    }
    out
}

/// `PENALTY_APPLIED` for a fee added or raised, `PENALTY_WAIVED` for one
/// removed or lowered.
fn fee_audit(loan_id: Uuid, change: &FeeChange, actor: Option<Uuid>) -> AuditEntry {
    let action = if change.is_charged() {
        AuditAction::PenaltyApplied
    } else {
        AuditAction::PenaltyWaived
    };
    AuditEntry::new(action, actor)
        .entity(EntityType::Loan, loan_id)
        .details(json!({
            "installmentNumber": change.number,
            "previous": change.previous.to_string(),
            "penalty": change.penalty.to_string(),
        }))
}

/// `LOAN_OVERDUE`: the loan became overdue on `as_of`.
fn loan_overdue(loan_id: Uuid, as_of: NaiveDate, actor: Option<Uuid>) -> AuditEntry {
    AuditEntry::new(AuditAction::LoanOverdue, actor)
        .entity(EntityType::Loan, loan_id)
        .details(json!({ "asOf": as_of }))
}

/// The borrower's notifications and the audit entries of a payment just
/// recorded: `PAYMENT_RECEIVED` / `PAYMENT_RECORDED`, and `LOAN_PAID` when
/// it cleared the loan.
pub fn payment_recorded(
    loan: &loan::Model,
    payment: &payment::Model,
    actor: Uuid,
) -> Announcements {
    let amount = Money::from_minor(payment.amount_minor);
    let outstanding = Money::from_minor(payment.loan_outstanding_after_minor);
    let mut out = Announcements::default();
    out.notices
        .push(messages::payment_received(loan, amount, outstanding));
    out.entries.push(
        AuditEntry::new(AuditAction::PaymentRecorded, Some(actor))
            .entity(EntityType::Payment, payment.id)
            .details(json!({
                "loanId": loan.id,
                "amount": amount.to_string(),
                "principal": Money::from_minor(payment.principal_minor).to_string(),
                "interest": Money::from_minor(payment.interest_minor).to_string(),
                "penalty": Money::from_minor(payment.penalty_minor).to_string(),
                "loanStatus": payment.loan_status_after.as_str(),
                "loanOutstanding": outstanding.to_string(),
            })),
    );
    if payment.loan_status_after == LoanStatus::Paid {
        out.notices.push(messages::loan_paid(loan));
        out.entries.push(
            AuditEntry::new(AuditAction::LoanPaid, Some(actor))
                .entity(EntityType::Loan, loan.id)
                .details(json!({ "paymentId": payment.id })),
        );
    }
    out
}

/// `LOAN_SETTLED`: the quote the settlement paid (its portions) and the
/// interest it waived. (`LOAN_PAID` follows as for any payment that
/// closes a loan.)
pub fn settled(
    before: &loan::Model,
    after: &loan::Model,
    payment_id: Uuid,
    split: &PaymentSplit,
    actor: Uuid,
) -> Announcements {
    let waived = Money::from_minor(before.total_payable_minor)
        - Money::from_minor(after.total_payable_minor);
    Announcements {
        notices: Vec::new(),
        entries: vec![
            AuditEntry::new(AuditAction::LoanSettled, Some(actor))
                .entity(EntityType::Loan, before.id)
                .details(json!({
                    "paymentId": payment_id,
                    "quote": {
                        "principal": split.principal.to_string(),
                        "interest": split.interest.to_string(),
                        "penalties": split.penalty.to_string(),
                        "total": (split.principal + split.interest + split.penalty).to_string(),
                    },
                    "interestWaived": waived.to_string(),
                })),
        ],
    }
}

/// Adds to an action's audit details the four-eyes decision it carries
/// out and who asked for it.
fn with_decision(
    mut details: serde_json::Value,
    decision: Option<DecisionRef>,
) -> serde_json::Value {
    if let Some(decision) = decision {
        details["decisionId"] = json!(decision.id);
        details["requestedBy"] = json!(decision.requested_by);
    }
    details
}

/// `LOAN_WRITTEN_OFF`: what was unpaid then, part by part, as `outstanding`
/// counts it, why, and the decision.
pub fn written_off(loan: &loan::Model, unpaid: Owed, write_off: &WriteOff) -> Announcements {
    Announcements {
        notices: Vec::new(),
        entries: vec![
            AuditEntry::new(AuditAction::LoanWrittenOff, Some(write_off.by))
                .entity(EntityType::Loan, loan.id)
                .details(with_decision(
                    json!({
                        "principal": unpaid.principal.to_string(),
                        "interest": unpaid.interest.to_string(),
                        "penalties": unpaid.penalty.to_string(),
                        "reason": write_off.reason,
                    }),
                    Some(write_off.decision),
                )),
        ],
    }
}

/// The borrower's notice and the audit entry of a reversal.
pub fn reversed(
    loan: &loan::Model,
    payment: &payment::Model,
    actor: Uuid,
    decision: Option<DecisionRef>,
) -> Announcements {
    let amount = Money::from_minor(payment.amount_minor);
    let reason = payment.reversal_reason.clone().unwrap_or_default();
    Announcements {
        notices: vec![messages::payment_reversed(
            loan,
            amount,
            payment.value_date,
            &reason,
        )],
        entries: vec![
            AuditEntry::new(AuditAction::PaymentReversed, Some(actor))
                .entity(EntityType::Payment, payment.id)
                .details(with_decision(
                    json!({
                        "reason": reason,
                        "loanId": loan.id,
                        "amount": amount.to_string(),
                        "valueDate": payment.value_date,
                    }),
                    decision,
                )),
        ],
    }
}

/// The borrower's notice and the audit entry of an approval.
pub fn approved(
    loan: &loan::Model,
    rate: Percent,
    installment_amount: Money,
    total_payable: Money,
    first_due_date: NaiveDate,
    actor: Uuid,
    decision: Option<DecisionRef>,
) -> Announcements {
    Announcements {
        notices: vec![messages::loan_approved(
            loan,
            rate,
            installment_amount,
            first_due_date,
        )],
        entries: vec![
            AuditEntry::new(AuditAction::LoanApproved, Some(actor))
                .entity(EntityType::Loan, loan.id)
                .details(with_decision(
                    json!({
                        "annualInterestRate": rate.to_string(),
                        "installmentAmount": installment_amount.to_string(),
                        "totalPayable": total_payable.to_string(),
                        "firstDueDate": first_due_date,
                    }),
                    decision,
                )),
        ],
    }
}
