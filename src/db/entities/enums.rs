//! The closed sets of values stored as text columns, declared once in
//! [`crate::enums`].

pub use crate::enums::{
    DecisionAction, DecisionStatus, EntryKind, ExcessPolicy, InstallmentStatus, LoanStatus,
    NotificationKind, PaymentStatus, Role,
};
