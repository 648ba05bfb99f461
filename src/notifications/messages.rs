//! Every notification the service writes about a loan, worded here and
//! nowhere else: the kind, the title and the message a borrower reads, and
//! the deduplication key of those that must go out once per installment.

use chrono::NaiveDate;
use uuid::Uuid;

use super::NewNotification;
use crate::db::entities::{NotificationKind, loan};
use crate::money::{Money, Percent};

fn about(
    loan: &loan::Model,
    kind: NotificationKind,
    title: String,
    message: String,
) -> NewNotification {
    NewNotification {
        user_id: loan.user_id,
        loan_id: loan.id,
        kind,
        title,
        message,
        dedup_key: None,
    }
}

/// `LOAN_APPROVED`: the terms the borrower will repay on.
pub fn loan_approved(
    loan: &loan::Model,
    rate: Percent,
    installment_amount: Money,
    first_due_date: NaiveDate,
) -> NewNotification {
    about(
        loan,
        NotificationKind::LoanApproved,
        "Your loan was approved".to_owned(),
        format!(
            "Your loan of {principal} {currency} was approved at {rate} % a year. You will repay \
             {term} monthly installments of {installment_amount} {currency}, the first due on {first_due_date}.",
            principal = Money::from_minor(loan.principal_minor),
            currency = loan.currency,
            term = loan.term_months,
        ),
    )
}

/// `LOAN_REJECTED`, with the reason staff gave.
pub fn loan_rejected(loan: &loan::Model, reason: &str) -> NewNotification {
    about(
        loan,
        NotificationKind::LoanRejected,
        "Your loan application was declined".to_owned(),
        format!(
            "Your application for {} {} was declined. Reason: {reason}",
            Money::from_minor(loan.principal_minor),
            loan.currency,
        ),
    )
}

/// `PAYMENT_RECEIVED`: what the loan owes after it.
pub fn payment_received(loan: &loan::Model, amount: Money, outstanding: Money) -> NewNotification {
    let currency = &loan.currency;
    about(
        loan,
        NotificationKind::PaymentReceived,
        "Payment received".to_owned(),
        format!(
            "We received your payment of {amount} {currency}. Your loan now has {outstanding} {currency} outstanding."
        ),
    )
}

/// `LOAN_PAID`: the payment that cleared the loan.
pub fn loan_paid(loan: &loan::Model) -> NewNotification {
    about(
        loan,
        NotificationKind::LoanPaid,
        "Loan paid off".to_owned(),
        format!(
            "Your loan of {} {} is fully repaid. Thank you!",
            Money::from_minor(loan.principal_minor),
            loan.currency
        ),
    )
}

/// `PAYMENT_REVERSED`, with the reason staff gave.
pub fn payment_reversed(
    loan: &loan::Model,
    amount: Money,
    value_date: NaiveDate,
    reason: &str,
) -> NewNotification {
    about(
        loan,
        NotificationKind::PaymentReversed,
        "Payment reversed".to_owned(),
        format!(
            "Your payment of {amount} {currency} valued {value_date} was reversed: {reason}",
            currency = loan.currency,
        ),
    )
}

/// `PAYMENT_OVERDUE`, once per installment, ever.
pub fn payment_overdue(
    loan: &loan::Model,
    installment_id: Uuid,
    number: i32,
    due_date: NaiveDate,
    owed: Money,
) -> NewNotification {
    NewNotification {
        dedup_key: Some(format!("overdue:{installment_id}")),
        ..about(
            loan,
            NotificationKind::PaymentOverdue,
            "Payment overdue".to_owned(),
            format!(
                "Installment #{number} of your loan was due on {due_date} and is overdue: {owed} {} is still owed.",
                loan.currency
            ),
        )
    }
}

/// `PENALTY_APPLIED`, once per installment, ever: a fee that comes back
/// after a waiver is audited, not announced again.
pub fn late_fee_applied(
    loan: &loan::Model,
    installment_id: Uuid,
    number: i32,
    due_date: NaiveDate,
    fee: Money,
    owed: Money,
) -> NewNotification {
    let currency = &loan.currency;
    NewNotification {
        dedup_key: Some(format!("penalty:{installment_id}")),
        ..about(
            loan,
            NotificationKind::PenaltyApplied,
            "Late fee applied".to_owned(),
            format!(
                "A late fee of {fee} {currency} was added to installment #{number} (due {due_date}). \
                 It now owes {owed} {currency}."
            ),
        )
    }
}

/// `PAYMENT_DUE_SOON`, once per installment and number of days ahead.
pub fn payment_due_soon(
    loan: &loan::Model,
    installment_id: Uuid,
    number: i32,
    due_date: NaiveDate,
    owed: Money,
    days: u64,
) -> NewNotification {
    let when = if days == 1 {
        "tomorrow".to_owned()
    } else {
        format!("in {days} days")
    };
    NewNotification {
        dedup_key: Some(format!("due-soon:{installment_id}:{days}")),
        ..about(
            loan,
            NotificationKind::PaymentDueSoon,
            format!("Payment due {when}"),
            format!(
                "Installment #{number} of your loan, {owed} {}, is due {when} ({due_date}).",
                loan.currency
            ),
        )
    }
}
