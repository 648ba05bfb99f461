//! Parsed user input: once a value of these types exists, it is valid.

use chrono::NaiveDate;
use secrecy::SecretString;

/// A normalised (trimmed, lower-cased) email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: String) -> Result<Email, &'static str> {
        let email = raw.trim().to_lowercase();
        let message = "must be a valid email address";
        if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(message);
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(message);
        };
        let domain_ok = !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(message);
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 3–32 characters of `[A-Za-z0-9_.-]`; unique ignoring case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: String) -> Result<Username, &'static str> {
        let valid_chars = raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !(3..=32).contains(&raw.len()) || !valid_chars {
            return Err("must be 3 to 32 characters of letters, digits, '_', '.' or '-'");
        }
        Ok(Username(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form uniqueness is checked on.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

/// A new password: 8–128 characters.
#[derive(Debug, Clone)]
pub struct NewPassword(SecretString);

impl NewPassword {
    pub fn parse(raw: String) -> Result<NewPassword, &'static str> {
        let length = raw.chars().count();
        if !(8..=128).contains(&length) {
            return Err("must be 8 to 128 characters");
        }
        Ok(NewPassword(SecretString::from(raw)))
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

/// A first or last name: 1–100 characters after trimming.
pub fn person_name(raw: String) -> Result<String, &'static str> {
    bounded_text(raw, 1, 100, "must be 1 to 100 characters")
}

/// A phone number of digits, spaces and `+ - ( ) .`, at most 32
/// characters; empty means none.
pub fn phone_number(raw: String) -> Result<Option<String>, &'static str> {
    if raw.chars().count() > 32 {
        return Err("must be at most 32 characters");
    }
    if raw.trim().is_empty() {
        return Ok(None);
    }
    let phone = bounded_text(raw, 1, 32, "must be at most 32 characters")?;
    let allowed = phone
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'));
    if !allowed || !phone.chars().any(|c| c.is_ascii_digit()) {
        return Err("must be a phone number of digits, spaces and + - ( ) .");
    }
    Ok(Some(phone))
}

/// A postal address of at most 500 characters; empty means none.
pub fn address(raw: String) -> Result<Option<String>, &'static str> {
    if raw.chars().count() > 500 {
        return Err("must be at most 500 characters");
    }
    if raw.trim().is_empty() {
        return Ok(None);
    }
    bounded_text(raw, 1, 500, "must be at most 500 characters").map(Some)
}

/// A date of birth: `YYYY-MM-DD`, strictly before `today`.
pub fn date_of_birth(raw: String, today: NaiveDate) -> Result<NaiveDate, &'static str> {
    let date = crate::calendar::parse_date(&raw).map_err(|_| "must be a date YYYY-MM-DD")?;
    if date >= today {
        return Err("must be in the past");
    }
    Ok(date)
}

fn bounded_text(
    raw: String,
    min: usize,
    max: usize,
    message: &'static str,
) -> Result<String, &'static str> {
    // The limits count what the client sent (as the OpenAPI maxLength
    // does); what is stored is trimmed, and must not be blank.
    let length = raw.chars().count();
    let text = raw.trim();
    if length > max || text.chars().count() < min {
        return Err(message);
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("  Alice@Example.COM ".to_owned()).map(|e| e.0),
            Ok("alice@example.com".to_owned())
        );
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@.com",
            "a@b..com",
        ] {
            assert!(Email::parse(bad.to_owned()).is_err(), "{bad}");
        }
    }

    #[test]
    fn usernames_follow_the_contract() {
        assert!(Username::parse("al".to_owned()).is_err());
        assert!(Username::parse("a".repeat(33)).is_err());
        assert!(Username::parse("bob smith".to_owned()).is_err());
        assert!(Username::parse("bøb".to_owned()).is_err());
        let name = Username::parse("Bob_S.mith-1".to_owned()).expect("valid");
        assert_eq!(name.key(), "bob_s.mith-1");
    }

    #[test]
    fn passwords_count_characters() {
        assert!(NewPassword::parse("short".to_owned()).is_err());
        assert!(NewPassword::parse("ééééééé".to_owned()).is_err());
        assert!(NewPassword::parse("éééééééé".to_owned()).is_ok());
        assert!(NewPassword::parse("x".repeat(129)).is_err());
    }

    #[test]
    fn birth_dates_are_in_the_past() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 25).expect("date");
        assert!(date_of_birth("1990-02-03".to_owned(), today).is_ok());
        assert!(date_of_birth("2026-11-25".to_owned(), today).is_err());
        assert!(date_of_birth("1990-2-3".to_owned(), today).is_err());
        assert!(date_of_birth("03/02/1990".to_owned(), today).is_err());
    }
}
