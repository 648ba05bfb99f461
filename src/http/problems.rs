//! The HTTP edge of the domain errors: each capability's refusals become
//! the problem+json answer a client reads, here and only here. Services
//! and the servicing pipeline know nothing of status codes or of which
//! JSON field a refusal is about.

use super::error::AppError;
use crate::auth::service::AuthError;
use crate::db::entities::LoanStatus;
use crate::decisions::domain::DecisionError;
use crate::journal::service::BooksError;
use crate::loans::domain::LoanError;
use crate::loans::status::IllegalTransition;
use crate::notifications::service::NotificationError;
use crate::payments::domain::PaymentError;
use crate::servicing::{AmountRefusal, ServicingError, ValueDateRefusal};
use crate::users::domain::UserError;

impl From<IllegalTransition> for AppError {
    fn from(illegal: IllegalTransition) -> Self {
        AppError::Conflict(format!(
            "The loan is {} and cannot become {}.",
            illegal.from.as_str(),
            illegal.to.as_str()
        ))
    }
}

impl From<ServicingError> for AppError {
    fn from(error: ServicingError) -> Self {
        match error {
            ServicingError::LoanNotFound => AppError::NotFound("Loan"),
            ServicingError::PaymentNotFound => AppError::NotFound("Payment"),
            ServicingError::NotActive {
                status: LoanStatus::WrittenOff,
            } => AppError::Conflict(
                "The loan is WRITTEN_OFF: it takes payments as recoveries, but no settlement."
                    .to_owned(),
            ),
            ServicingError::NotActive { status } => AppError::Conflict(format!(
                "The loan is {}; only APPROVED or OVERDUE loans take payments.",
                status.as_str()
            )),
            ServicingError::NotOverdue { status } => AppError::Conflict(format!(
                "The loan is {}; only an OVERDUE loan can be written off.",
                status.as_str()
            )),
            ServicingError::ExcessOnWrittenOff => AppError::validation(
                "excess",
                "must be NEXT_INSTALLMENTS: a written-off loan takes no prepayment",
            ),
            ServicingError::RecordedBeforeWriteOff => AppError::Conflict(
                "The payment was recorded before the loan was written off; only recoveries can be reversed."
                    .to_owned(),
            ),
            ServicingError::Transition(illegal) => illegal.into(),
            ServicingError::FirstDueDate { today } => AppError::validation(
                "firstDueDate",
                format!("must be within one year of the approval date {today}"),
            ),
            ServicingError::ValueDate(ValueDateRefusal::InClosedPeriod { through }) => {
                AppError::Conflict(format!(
                    "The books are closed through {through}: a payment cannot have a valueDate on or before it."
                ))
            }
            ServicingError::ValueDate(ValueDateRefusal::BeforeWriteOff { on }) => {
                AppError::Conflict(format!(
                    "The loan was written off on {on}: a payment cannot have a valueDate before it."
                ))
            }
            ServicingError::ValueDate(refusal) => value_date(refusal),
            ServicingError::AlreadyReversed => {
                AppError::Conflict("This payment is already reversed.".to_owned())
            }
            ServicingError::SettledAfter => AppError::Conflict(
                "The loan was settled after this payment: reverse the settlement first."
                    .to_owned(),
            ),
            ServicingError::LaterPaymentsWouldExceed => AppError::Conflict(
                "Without this payment, the payments recorded after it would exceed what the loan owes."
                    .to_owned(),
            ),
            ServicingError::Amount { refusal, currency } => amount(refusal, &currency),
            ServicingError::Database(error) => error.into(),
            other @ (ServicingError::History(_)
            | ServicingError::Reconcile(_)
            | ServicingError::Schedule(_)
            | ServicingError::Inconsistent(_)) => AppError::internal(other),
        }
    }
}

fn value_date(refusal: ValueDateRefusal) -> AppError {
    let message = match refusal {
        ValueDateRefusal::AfterToday { today } => format!("must not be after today ({today})"),
        ValueDateRefusal::BeforeTheLoan { earliest } => {
            format!("must not be before {earliest}, the start of the loan's first period")
        }
        ValueDateRefusal::InClosedPeriod { through } => {
            format!("must be after {through}: the books are closed through it")
        }
        ValueDateRefusal::BeforeWriteOff { on } => {
            format!("must not be before {on}, when the loan was written off")
        }
    };
    AppError::validation("valueDate", message)
}

/// A payment amount the ledger cannot take, explained on `amount`.
fn amount(refusal: AmountRefusal, currency: &str) -> AppError {
    let message = match refusal {
        AmountRefusal::NotPositive => "must be a positive amount".to_owned(),
        AmountRefusal::ExceedsOutstanding { outstanding } => {
            format!("exceeds the outstanding balance of {outstanding} {currency}")
        }
        AmountRefusal::NothingToPrepay { excess } => format!(
            "pays {excess} {currency} beyond what is due, but no installment is open to prepay; \
             to close the loan, settle it at its payoff quote"
        ),
        AmountRefusal::PrepaymentTooLarge { excess, limit } => format!(
            "pays {excess} {currency} beyond what is due; a prepayment must be less than the \
             {limit} {currency} of principal the open installments owe (to pay everything, \
             settle the loan at its payoff quote)"
        ),
        AmountRefusal::Reschedule(source) => {
            format!("the open installments cannot be rescheduled with this prepayment: {source}")
        }
        AmountRefusal::NotTheQuote(quote) => format!(
            "must be exactly today's payoff quote, {total} {currency} (principal {principal}, \
             interest {interest}, penalties {penalties})",
            total = quote.total,
            principal = quote.principal,
            interest = quote.interest,
            penalties = quote.penalties,
        ),
        AmountRefusal::LaterPaymentsBreak => {
            "with this payment on its value date, the payments recorded after it could no longer \
             be applied as they were (they would exceed what the loan owes, or leave nothing to \
             prepay)"
                .to_owned()
        }
    };
    AppError::validation("amount", message)
}

impl From<PaymentError> for AppError {
    fn from(error: PaymentError) -> Self {
        match error {
            PaymentError::Servicing(error) => error.into(),
            PaymentError::Decision(error) => error.into(),
            PaymentError::Forbidden(refused) => refused.into(),
            PaymentError::KeyReused => AppError::Conflict(
                "This Idempotency-Key was already used with a different request.".to_owned(),
            ),
            PaymentError::QuoteBeforeToday { today } => {
                AppError::validation("asOf", format!("must not be before today ({today})"))
            }
            PaymentError::NoPayoff { status } => AppError::Conflict(format!(
                "The loan is {}; only APPROVED or OVERDUE loans have a payoff quote.",
                status.as_str()
            )),
            PaymentError::Database(error) => error.into(),
            other @ (PaymentError::WriterLost
            | PaymentError::QuoteOverflow
            | PaymentError::Reply(_)) => AppError::internal(other),
        }
    }
}

impl From<LoanError> for AppError {
    fn from(error: LoanError) -> Self {
        match error {
            LoanError::NotFound => AppError::NotFound("Loan"),
            LoanError::Transition(illegal) => illegal.into(),
            LoanError::Forbidden(refused) => refused.into(),
            LoanError::Servicing(error) => error.into(),
            LoanError::Decision(error) => error.into(),
            LoanError::Database(error) => error.into(),
            other @ LoanError::View(_) => AppError::internal(other),
        }
    }
}

impl From<UserError> for AppError {
    fn from(error: UserError) -> Self {
        match error {
            UserError::UserNotFound => AppError::NotFound("User"),
            UserError::ProfileNotFound => AppError::NotFound("Profile"),
            UserError::EmailTaken => {
                AppError::Conflict("An account with this email already exists.".to_owned())
            }
            UserError::UsernameTaken => {
                AppError::Conflict("This username is already taken.".to_owned())
            }
            UserError::EmailOrUsernameTaken => AppError::Conflict(
                "An account with this email or username already exists.".to_owned(),
            ),
            UserError::LastAdmin => {
                AppError::Conflict("The last admin cannot be demoted.".to_owned())
            }
            UserError::Forbidden(refused) => refused.into(),
            UserError::Database(error) => error.into(),
            other @ UserError::Inconsistent(_) => AppError::internal(other),
        }
    }
}

impl From<AuthError> for AppError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::BadCredentials => AppError::Unauthorized("Invalid credentials."),
            AuthError::BadRefreshToken => {
                AppError::Unauthorized("The refresh token is invalid, expired or revoked.")
            }
            AuthError::User(error) => error.into(),
            AuthError::Database(error) => error.into(),
            AuthError::Internal(error) => AppError::Internal(error),
        }
    }
}

impl From<NotificationError> for AppError {
    fn from(error: NotificationError) -> Self {
        match error {
            NotificationError::NotFound => AppError::NotFound("Notification"),
            NotificationError::Forbidden(refused) => refused.into(),
            NotificationError::Database(error) => error.into(),
        }
    }
}

impl From<BooksError> for AppError {
    fn from(error: BooksError) -> Self {
        match error {
            BooksError::NotBeforeToday { today } => {
                AppError::validation("through", format!("must be before today ({today})"))
            }
            BooksError::Reopening { closed_through } => AppError::Conflict(format!(
                "The books are closed through {closed_through}; they are never reopened."
            )),
            BooksError::Database(error) => error.into(),
        }
    }
}

impl From<DecisionError> for AppError {
    fn from(error: DecisionError) -> Self {
        match error {
            DecisionError::NotFound => AppError::NotFound("Decision"),
            DecisionError::AlreadyPending { action } => AppError::Conflict(format!(
                "A {} decision about this is already pending; confirm or reject it first.",
                action.as_str()
            )),
            DecisionError::NotPending { status } => AppError::Conflict(format!(
                "The decision is {}; only a PENDING decision can be confirmed or rejected.",
                status.as_str()
            )),
            DecisionError::OwnRequest => AppError::Forbidden(
                "The requester cannot confirm their own request: another ADMIN must.",
            ),
            DecisionError::Forbidden(refused) => refused.into(),
            DecisionError::Servicing(error) => error.into(),
            DecisionError::Database(error) => error.into(),
            other @ DecisionError::Request(_) => AppError::internal(other),
        }
    }
}
