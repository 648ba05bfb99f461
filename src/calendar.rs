//! Calendar dates as they arrive from outside (request bodies, query
//! strings, the command line): written exactly `YYYY-MM-DD`.

use chrono::NaiveDate;

/// Why a piece of text is not a calendar date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("must be a date YYYY-MM-DD")]
pub struct DateParseError;

/// A date written exactly `YYYY-MM-DD`: no single-digit months or days,
/// no time, no other separators.
pub fn parse_date(text: &str) -> Result<NaiveDate, DateParseError> {
    if text.len() != 10 {
        return Err(DateParseError);
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| DateParseError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_full_iso_form_is_a_date() {
        assert_eq!(
            parse_date("2026-02-28"),
            Ok(NaiveDate::from_ymd_opt(2026, 2, 28).expect("date"))
        );
        for text in [
            "2026-2-28",
            "2026-02-30",
            "28/02/2026",
            "2026-02-28T00:00:00Z",
            " 2026-02-28",
            "",
        ] {
            assert_eq!(parse_date(text), Err(DateParseError), "{text:?}");
        }
        assert_eq!(
            DateParseError.to_string(),
            "must be a date YYYY-MM-DD",
            "the message a client sees"
        );
    }
}
