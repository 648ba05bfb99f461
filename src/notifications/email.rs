//! Email: composing the plain-text message for a notification and sending
//! it through SMTP, or only logging it when no SMTP server is configured.

use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::Config;
use crate::db::entities::{NotificationKind, notification};

const DEFAULT_FROM: &str = "Loan Tracker <no-reply@loan-tracker.localhost>";

/// Where emails go.
#[derive(Clone)]
pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
    /// No `SMTP_URL`: emails are written to the log instead.
    LogOnly { from: Mailbox },
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mailer::Smtp { from, .. } => write!(f, "Mailer::Smtp(from {from})"),
            Mailer::LogOnly { from } => write!(f, "Mailer::LogOnly(from {from})"),
        }
    }
}

/// One email, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub body: String,
}

impl Mailer {
    pub fn from_config(config: &Config) -> anyhow::Result<Mailer> {
        let from: Mailbox = config
            .mail_from
            .as_deref()
            .unwrap_or(DEFAULT_FROM)
            .parse()
            .map_err(|error| anyhow::anyhow!("MAIL_FROM is not a mailbox: {error}"))?;
        match &config.smtp_url {
            Some(url) => {
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                    .map_err(|error| anyhow::anyhow!("SMTP_URL: {error}"))?
                    .timeout(Some(std::time::Duration::from_secs(20)))
                    .build();
                Ok(Mailer::Smtp { transport, from })
            }
            None => Ok(Mailer::LogOnly { from }),
        }
    }

    pub async fn send(&self, email: &Email) -> anyhow::Result<()> {
        match self {
            Mailer::Smtp { transport, from } => {
                let to: Mailbox = email
                    .to
                    .parse()
                    .map_err(|error| anyhow::anyhow!("bad recipient: {error}"))?;
                let message = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(email.subject.clone())
                    .header(ContentType::TEXT_PLAIN)
                    .body(email.body.clone())?;
                transport.send(message).await?;
                Ok(())
            }
            Mailer::LogOnly { from } => {
                tracing::info!(
                    from = %from,
                    to = %email.to,
                    subject = %email.subject,
                    body = %email.body,
                    "email (no SMTP_URL configured, so only logged)"
                );
                Ok(())
            }
        }
    }
}

/// The email announcing `notification` to `recipient`.
pub fn compose(notification: &notification::Model, recipient: &str, username: &str) -> Email {
    let closing = match notification.kind {
        NotificationKind::LoanApproved => {
            "You can see your full repayment schedule in your account at any time."
        }
        NotificationKind::LoanRejected => {
            "If you have questions about this decision, please contact us."
        }
        NotificationKind::PaymentReceived => {
            "Thank you for your payment. This email is your receipt."
        }
        NotificationKind::PaymentDueSoon => {
            "Please make sure the payment reaches us by the due date."
        }
        NotificationKind::PaymentOverdue => {
            "Please pay as soon as possible; late installments may incur a late fee."
        }
        NotificationKind::PenaltyApplied => {
            "Paying the overdue installment stops it from growing further."
        }
        NotificationKind::LoanPaid => "Your loan is closed. It was a pleasure lending to you.",
        NotificationKind::PaymentReversed => {
            "The amount counts as unpaid again; your schedule shows what is now due."
        }
    };
    let body = format!(
        "Hello {username},\n\n{message}\n\n{closing}\n\n-- \nLoan Tracker\n",
        message = notification.message,
    );
    Email {
        to: recipient.to_owned(),
        subject: notification.title.clone(),
        body,
    }
}

/// Hides the SMTP password if a URL ever reaches a log line.
pub fn describe_smtp(config: &Config) -> String {
    config
        .smtp_url
        .as_ref()
        .map_or_else(|| "log only".to_owned(), |url| format!("{url:?}"))
}
