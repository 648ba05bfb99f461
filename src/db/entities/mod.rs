//! SeaORM entities, one per table of the initial migration. They are the
//! storage shape only: handlers never serialise them, services map them to
//! view types.

pub mod approved_installment;
pub mod audit_log;
pub mod audit_log_archive;
pub mod books;
pub mod decision;
pub mod idempotency_key;
pub mod installment;
pub mod job_run;
pub mod journal_day_total;
pub mod journal_entry;
pub mod loan;
pub mod notification;
pub mod payment;
pub mod payment_allocation;
pub mod profile;
pub mod refresh_session;
pub mod user;

mod enums;
pub use enums::{
    DecisionAction, DecisionStatus, EntryKind, ExcessPolicy, InstallmentStatus, LoanStatus,
    NotificationKind, PaymentStatus, Role,
};
