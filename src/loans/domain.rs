//! Parsed loan input (once a value of these types exists, it is valid),
//! and why a loan operation is refused.

use crate::loans::status::IllegalTransition;
use crate::policy::Forbidden;
use crate::schedule::MAX_TERM_MONTHS;
use crate::servicing::ServicingError;
use crate::users::domain::is_invisible;

/// What an approver may set; the rest comes from the application.
#[derive(Debug, Clone, Default)]
pub struct ApprovalTerms {
    pub annual_interest_rate: Option<crate::money::Percent>,
    pub first_due_date: Option<chrono::NaiveDate>,
}

/// The terms of an approval request as stored with its decision (the body
/// as sent, checked when it was asked): `annualInterestRate` as a string
/// or a number, `firstDueDate` as `YYYY-MM-DD`, both optional.
pub fn approval_terms_of(request: &serde_json::Value) -> Result<ApprovalTerms, String> {
    let rate = match &request["annualInterestRate"] {
        serde_json::Value::Null => None,
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        other => return Err(format!("annualInterestRate {other}")),
    };
    let first_due_date = match &request["firstDueDate"] {
        serde_json::Value::Null => None,
        serde_json::Value::String(text) => {
            Some(crate::calendar::parse_date(text).map_err(|error| error.to_string())?)
        }
        other => return Err(format!("firstDueDate {other}")),
    };
    Ok(ApprovalTerms {
        annual_interest_rate: rate
            .map(|text| crate::money::Percent::parse(&text))
            .transpose()
            .map_err(|error| error.to_string())?,
        first_due_date,
    })
}

/// Why a loan operation was refused, or failed.
#[derive(Debug, thiserror::Error)]
pub enum LoanError {
    #[error("no such loan")]
    NotFound,
    #[error(transparent)]
    Transition(#[from] IllegalTransition),
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error(transparent)]
    Servicing(#[from] ServicingError),
    #[error(transparent)]
    Decision(#[from] crate::decisions::domain::DecisionError),
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
    #[error("the loan cannot be written as JSON: {0}")]
    View(#[from] serde_json::Error),
}

/// Longest purpose and rejection reason, in characters.
const TEXT_MAX_CHARS: usize = 500;

/// A loan term: 1 to 360 whole months.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermMonths(u32);

impl TermMonths {
    pub fn parse(months: i64) -> Result<TermMonths, &'static str> {
        u32::try_from(months)
            .ok()
            .filter(|months| (1..=MAX_TERM_MONTHS).contains(months))
            .map(TermMonths)
            .ok_or("must be a whole number of months from 1 to 360")
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// What the borrower says the loan is for: trimmed, at most 500
/// characters; blank means none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purpose(String);

impl Purpose {
    pub fn parse(raw: &str) -> Result<Option<Purpose>, &'static str> {
        if raw.chars().count() > TEXT_MAX_CHARS {
            return Err("must be at most 500 characters");
        }
        let trimmed = raw.trim();
        Ok((!trimmed.is_empty()).then(|| Purpose(trimmed.to_owned())))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Why staff did something to a loan (a rejection): 1 to 500
/// characters, not all blank, stored trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    pub fn parse(raw: &str) -> Result<Reason, &'static str> {
        if raw.chars().count() > TEXT_MAX_CHARS || raw.trim().is_empty() {
            return Err("must be 1 to 500 characters, not all blank");
        }
        // A reason is shown to borrowers and staff: an escape sequence or a
        // right-to-left override could make it read as something else.
        // Line breaks and tabs are text.
        let hidden = |c: char| is_invisible(c) && !matches!(c, '\t' | '\n' | '\r');
        if raw.chars().any(hidden) {
            return Err(
                "must not contain control or format characters (such as ESC or a right-to-left override)",
            );
        }
        Ok(Reason(raw.trim().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_refuse_control_and_format_characters_but_keep_line_breaks() {
        for hidden in [
            "paid\u{1b}[2J",
            "fraud\u{202e}gnirts",
            "zero\u{200b}width",
            "bell\u{7}",
        ] {
            assert!(Reason::parse(hidden).is_err(), "{hidden:?}");
        }
        let kept =
            Reason::parse("  bounced cheque\nsecond line\twith a tab  ").map(Reason::into_inner);
        assert_eq!(
            kept.as_deref(),
            Ok("bounced cheque\nsecond line\twith a tab")
        );
    }

    #[test]
    fn terms_are_one_to_three_hundred_sixty_months() {
        assert_eq!(TermMonths::parse(1).map(TermMonths::get), Ok(1));
        assert_eq!(TermMonths::parse(360).map(TermMonths::get), Ok(360));
        for months in [0, -1, 361, i64::MAX] {
            assert!(TermMonths::parse(months).is_err(), "{months}");
        }
    }

    #[test]
    fn purposes_are_trimmed_and_blank_means_none() {
        assert_eq!(
            Purpose::parse("  a car  ").map(|p| p.map(Purpose::into_inner)),
            Ok(Some("a car".to_owned()))
        );
        assert_eq!(Purpose::parse("   "), Ok(None));
        assert!(
            Purpose::parse(&"é".repeat(500)).is_ok(),
            "characters, not bytes"
        );
        assert!(Purpose::parse(&"x".repeat(501)).is_err());
    }

    #[test]
    fn reasons_are_required_and_bounded() {
        assert_eq!(
            Reason::parse(" income too low ").map(Reason::into_inner),
            Ok("income too low".to_owned())
        );
        assert!(Reason::parse("  ").is_err());
        assert!(Reason::parse("").is_err());
        assert!(Reason::parse(&"x".repeat(501)).is_err());
        assert!(Reason::parse(&"x".repeat(500)).is_ok());
    }
}
