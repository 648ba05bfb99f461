//! The closed sets of values the service stores as text and sends on the
//! wire. Each is declared once, with its text, by [`text_enum!`]: the
//! database mapping, JSON, the OpenAPI schema, `ALL`, `as_str` and `parse`
//! all come from that one list.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Declares an enum whose variants are stored and serialised as the given
/// text.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $text:tt ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash,
            EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
        )]
        #[sea_orm(rs_type = "String", db_type = "Text")]
        pub enum $name {
            $(
                $(#[$variant_meta])*
                #[sea_orm(string_value = $text)]
                #[serde(rename = $text)]
                $variant,
            )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

text_enum! {
    /// What a user may do: `ADMIN` everything, `MANAGER` read everything and
    /// service loans, `USER` only their own records.
    pub enum Role {
        Admin = "ADMIN",
        Manager = "MANAGER",
        User = "USER",
    }
}

impl Role {
    /// Staff read every record; users only their own.
    pub fn is_staff(self) -> bool {
        matches!(self, Role::Admin | Role::Manager)
    }
}

text_enum! {
    /// Where a loan is in its life: `PENDING`, then `APPROVED`, `REJECTED`
    /// or `CANCELLED`; an approved loan is `OVERDUE` while an installment
    /// is late, and `PAID` when nothing is owed; an overdue one may be
    /// `WRITTEN_OFF`, for good.
    pub enum LoanStatus {
        Pending = "PENDING",
        Approved = "APPROVED",
        Rejected = "REJECTED",
        Cancelled = "CANCELLED",
        Overdue = "OVERDUE",
        Paid = "PAID",
        WrittenOff = "WRITTEN_OFF",
    }
}

text_enum! {
    /// Where an installment is: nothing paid, partly paid, paid, or unpaid
    /// past its due date.
    pub enum InstallmentStatus {
        Pending = "PENDING",
        Partial = "PARTIAL",
        Paid = "PAID",
        Overdue = "OVERDUE",
    }
}

text_enum! {
    /// What a notification is about.
    pub enum NotificationKind {
        LoanApproved = "LOAN_APPROVED",
        LoanRejected = "LOAN_REJECTED",
        PaymentReceived = "PAYMENT_RECEIVED",
        PaymentDueSoon = "PAYMENT_DUE_SOON",
        PaymentOverdue = "PAYMENT_OVERDUE",
        PenaltyApplied = "PENALTY_APPLIED",
        LoanPaid = "LOAN_PAID",
        PaymentReversed = "PAYMENT_REVERSED",
    }
}

text_enum! {
    /// What an audit entry records.
    pub enum AuditAction {
        UserRegistered = "USER_REGISTERED",
        LoginSucceeded = "LOGIN_SUCCEEDED",
        LoginFailed = "LOGIN_FAILED",
        RefreshReuseDetected = "REFRESH_REUSE_DETECTED",
        Logout = "LOGOUT",
        RoleChanged = "ROLE_CHANGED",
        ProfileUpdated = "PROFILE_UPDATED",
        LoanApplied = "LOAN_APPLIED",
        LoanApproved = "LOAN_APPROVED",
        LoanRejected = "LOAN_REJECTED",
        LoanCancelled = "LOAN_CANCELLED",
        PaymentRecorded = "PAYMENT_RECORDED",
        PenaltyApplied = "PENALTY_APPLIED",
        LoanOverdue = "LOAN_OVERDUE",
        LoanPaid = "LOAN_PAID",
        PaymentReversed = "PAYMENT_REVERSED",
        PenaltyWaived = "PENALTY_WAIVED",
        LoanSettled = "LOAN_SETTLED",
        BooksClosed = "BOOKS_CLOSED",
        DecisionRequested = "DECISION_REQUESTED",
        DecisionConfirmed = "DECISION_CONFIRMED",
        DecisionRejected = "DECISION_REJECTED",
        LoanWrittenOff = "LOAN_WRITTEN_OFF",
    }
}

text_enum! {
    /// What a four-eyes decision is about.
    pub enum DecisionAction {
        ApproveLoan = "APPROVE_LOAN",
        ReversePayment = "REVERSE_PAYMENT",
        WriteOff = "WRITE_OFF",
    }
}

text_enum! {
    /// Where a four-eyes decision is: waiting, or decided once.
    pub enum DecisionStatus {
        Pending = "PENDING",
        Confirmed = "CONFIRMED",
        Rejected = "REJECTED",
    }
}

text_enum! {
    /// What a journal entry books.
    pub enum EntryKind {
        /// A loan paid out: debit loans receivable, credit cash.
        Disbursement = "DISBURSEMENT",
        /// A payment: debit cash, credit what its portions paid.
        Repayment = "REPAYMENT",
        /// A payment reversed: the mirror of everything booked for it.
        Reversal = "REVERSAL",
        /// A replay moved another payment's portions: the difference.
        Adjustment = "ADJUSTMENT",
        /// A loan written off: its unpaid principal to loan losses.
        WriteOff = "WRITE_OFF",
        /// A payment on a written-off loan.
        Recovery = "RECOVERY",
    }
}

text_enum! {
    /// Whether a payment counts: posted, or reversed (it stays in the
    /// history, and the loan is replayed without it).
    pub enum PaymentStatus {
        Posted = "POSTED",
        Reversed = "REVERSED",
    }
}

text_enum! {
    /// What a payment pays beyond what is due on its value date.
    pub enum ExcessPolicy {
        NextInstallments = "NEXT_INSTALLMENTS",
        /// The excess prepays principal; the open installments keep the
        /// regular amount and fewer are needed.
        ReduceTerm = "REDUCE_TERM",
        /// The excess prepays principal; the open installments keep their
        /// count with a smaller amount.
        ReduceInstallment = "REDUCE_INSTALLMENT",
        /// The payoff of the whole loan (`POST /loans/{id}/settle`).
        Settlement = "SETTLEMENT",
    }
}

text_enum! {
    /// How late a loan is: days past due of its oldest unpaid installment,
    /// in the buckets lenders report.
    pub enum DelinquencyBucket {
        /// Nothing due before today is unpaid.
        Current = "CURRENT",
        Days1To30 = "1-30",
        Days31To60 = "31-60",
        Days61To90 = "61-90",
        /// 91 days or more. (In a query string an unescaped `+` reads as
        /// a space: `?bucket=91+` arrives as `91 ` and is taken too.)
        #[serde(alias = "91 ")]
        Days91Plus = "91+",
    }
}

text_enum! {
    /// The kind of record an audit entry is about.
    pub enum EntityType {
        User = "USER",
        Loan = "LOAN",
        Payment = "PAYMENT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_through_parse_json_and_the_database_value() {
        for status in LoanStatus::ALL {
            assert_eq!(LoanStatus::parse(status.as_str()), Some(*status));
            assert_eq!(
                serde_json::to_value(status).ok(),
                Some(serde_json::Value::String(status.as_str().to_owned()))
            );
            assert_eq!(status.to_value(), status.as_str());
        }
        assert_eq!(
            AuditAction::parse("LOAN_OVERDUE"),
            Some(AuditAction::LoanOverdue)
        );
        assert_eq!(AuditAction::parse("loan_overdue"), None);
        assert_eq!(Role::ALL.len(), 3);
        assert_eq!(NotificationKind::ALL.len(), 8);
    }
}
