//! The closed sets of values stored as text columns.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a user may do: `ADMIN` everything, `MANAGER` read everything and
/// service loans, `USER` only their own records.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "UPPERCASE")]
pub enum Role {
    #[sea_orm(string_value = "ADMIN")]
    Admin,
    #[sea_orm(string_value = "MANAGER")]
    Manager,
    #[sea_orm(string_value = "USER")]
    User,
}

impl Role {
    /// Staff read every record; users only their own.
    pub fn is_staff(self) -> bool {
        matches!(self, Role::Admin | Role::Manager)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "ADMIN",
            Role::Manager => "MANAGER",
            Role::User => "USER",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "ADMIN" => Some(Role::Admin),
            "MANAGER" => Some(Role::Manager),
            "USER" => Some(Role::User),
            _ => None,
        }
    }
}

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "UPPERCASE")]
pub enum LoanStatus {
    #[sea_orm(string_value = "PENDING")]
    Pending,
    #[sea_orm(string_value = "APPROVED")]
    Approved,
    #[sea_orm(string_value = "REJECTED")]
    Rejected,
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
    #[sea_orm(string_value = "OVERDUE")]
    Overdue,
    #[sea_orm(string_value = "PAID")]
    Paid,
}

impl LoanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LoanStatus::Pending => "PENDING",
            LoanStatus::Approved => "APPROVED",
            LoanStatus::Rejected => "REJECTED",
            LoanStatus::Cancelled => "CANCELLED",
            LoanStatus::Overdue => "OVERDUE",
            LoanStatus::Paid => "PAID",
        }
    }

    pub fn parse(text: &str) -> Option<LoanStatus> {
        [
            LoanStatus::Pending,
            LoanStatus::Approved,
            LoanStatus::Rejected,
            LoanStatus::Cancelled,
            LoanStatus::Overdue,
            LoanStatus::Paid,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "UPPERCASE")]
pub enum InstallmentStatus {
    #[sea_orm(string_value = "PENDING")]
    Pending,
    #[sea_orm(string_value = "PARTIAL")]
    Partial,
    #[sea_orm(string_value = "PAID")]
    Paid,
    #[sea_orm(string_value = "OVERDUE")]
    Overdue,
}

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationKind {
    #[sea_orm(string_value = "LOAN_APPROVED")]
    LoanApproved,
    #[sea_orm(string_value = "LOAN_REJECTED")]
    LoanRejected,
    #[sea_orm(string_value = "PAYMENT_RECEIVED")]
    PaymentReceived,
    #[sea_orm(string_value = "PAYMENT_DUE_SOON")]
    PaymentDueSoon,
    #[sea_orm(string_value = "PAYMENT_OVERDUE")]
    PaymentOverdue,
    #[sea_orm(string_value = "PENALTY_APPLIED")]
    PenaltyApplied,
    #[sea_orm(string_value = "LOAN_PAID")]
    LoanPaid,
}
