//! Parsed user input: once a value of these types exists, it is valid.

use chrono::NaiveDate;
use secrecy::SecretString;

/// Why a user or profile operation was refused, or failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("no such user")]
    UserNotFound,
    #[error("no profile yet")]
    ProfileNotFound,
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("this username is already taken")]
    UsernameTaken,
    /// Lost a race with a concurrent registration of the same name.
    #[error("an account with this email or username already exists")]
    EmailOrUsernameTaken,
    #[error("the last admin cannot be demoted")]
    LastAdmin,
    #[error(transparent)]
    Forbidden(#[from] crate::policy::Forbidden),
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
    #[error("inconsistent: {0}")]
    Inconsistent(&'static str),
}

/// A normalised (trimmed, lower-cased) email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Trims and lower-cases `raw`, then requires an address that
    /// RFC 5322 allows (checked by `email_address`, with a dotted domain
    /// and no domain literal or display name) and that holds no invisible
    /// character: none that is a control or format character (Unicode
    /// categories Cc and Cf, which include the zero-width and bidi
    /// controls), so no lookalike of a registered address can be created.
    pub fn parse(raw: String) -> Result<Email, &'static str> {
        let email = raw.trim().to_lowercase();
        let message = "must be a valid email address";
        if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || is_invisible(c)) {
            return Err(message);
        }
        let options = email_address::Options {
            minimum_sub_domains: 2,
            allow_domain_literal: false,
            allow_display_text: false,
            ..email_address::Options::default()
        };
        if email_address::EmailAddress::parse_with_options(&email, options).is_err() {
            return Err(message);
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A control character (Unicode category Cc) or a format character
/// (category Cf: soft hyphen, zero-width space and joiners, the bidi
/// embeddings, overrides and isolates, the byte-order mark, …). Cf is
/// listed by hand from the Unicode 15.1 character database.
pub fn is_invisible(c: char) -> bool {
    const FORMAT: &[(u32, u32)] = &[
        (0x00AD, 0x00AD),
        (0x0600, 0x0605),
        (0x061C, 0x061C),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x2064),
        (0x2066, 0x206F),
        (0xFEFF, 0xFEFF),
        (0xFFF9, 0xFFFB),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0001, 0xE0001),
        (0xE0020, 0xE007F),
    ];
    let code = u32::from(c);
    c.is_control()
        || FORMAT
            .iter()
            .any(|(low, high)| (*low..=*high).contains(&code))
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
    fn invisible_characters_and_bad_syntax_make_no_email() {
        for raw in [
            "\u{200B}zw@example.com",
            "\u{FEFF}zw@example.com",
            "zw\u{200D}@example.com",
            "zw\u{00AD}@example.com",
            "zw\u{202E}@example.com",
            "zw@exa\u{2066}mple.com",
            "zw\u{7}@example.com",
            "<script>@x.com",
            "a@[127.0.0.1]",
            "Name <a@example.com>",
            "a@localhost",
            "a b@example.com",
            "@example.com",
            "a@",
            "a@@example.com",
        ] {
            assert!(Email::parse(raw.to_owned()).is_err(), "{raw:?}");
        }
        assert_eq!(
            Email::parse("  Zw@Example.COM ".to_owned()).map(|e| e.as_str().to_owned()),
            Ok("zw@example.com".to_owned())
        );
        assert!(Email::parse("first.last+tag@sub.example.co.uk".to_owned()).is_ok());
        assert!(Email::parse("o'brien@example.ie".to_owned()).is_ok());
    }

    #[test]
    fn usernames_refuse_invisible_characters() {
        for raw in ["\u{200B}bob", "bob\u{200D}", "bo\u{202E}b", "bob\u{FEFF}"] {
            assert!(Username::parse(raw.to_owned()).is_err(), "{raw:?}");
        }
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
