//! Typed configuration, read once at start-up from the environment (and a
//! `.env` file, loaded by `main` before this runs).
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `HOST`, `PORT` | `127.0.0.1`, `8080` | listen address |
//! | `DATA_DIR` | `./data` | SQLite file and generated secrets in embedded mode |
//! | `DATABASE_URL` | SQLite in `DATA_DIR` | `sqlite://…` or `postgres://…` |
//! | `DATABASE_READ_URL` | — | optional read replica for read-only queries |
//! | `DATABASE_MAX_CONNECTIONS` | `16` | pool size (PostgreSQL) |
//! | `REDIS_URL` | — | cache, rate limits and queue shared across instances |
//! | `JWT_SECRET` | generated (embedded mode only) | HS256 key, ≥ 32 bytes |
//! | `ACCESS_TOKEN_TTL_SECS`, `REFRESH_TOKEN_TTL_SECS` | `900`, `2592000` | token lifetimes |
//! | `ADMIN_EMAIL`, `ADMIN_USERNAME`, `ADMIN_PASSWORD` | — | bootstrap administrator |
//! | `RATE_LIMIT_PER_MINUTE` | `300` | requests per minute per client |
//! | `AUTH_RATE_LIMIT_PER_MINUTE` | `10` | login + register attempts per minute per IP |
//! | `TRUSTED_PROXIES` | — | comma-separated IPs or networks (CIDR) whose `X-Forwarded-For` is believed |
//! | `CURRENCY`, `TIMEZONE` | `USD`, `UTC` | |
//! | `DEFAULT_ANNUAL_INTEREST_RATE` | `12.0` | percent quoted at application |
//! | `LATE_FEE_PERCENT`, `LATE_FEE_GRACE_DAYS` | `5.0`, `0` | late fee |
//! | `REMINDER_DAYS_BEFORE` | `3` | first payment reminder |
//! | `LOAN_MIN_AMOUNT`, `LOAN_MAX_AMOUNT` | `100.00`, `1000000.00` | |
//! | `SMTP_URL`, `MAIL_FROM` | — | email delivery; without them emails are only logged |
//! | `CORS_ORIGINS` | — | comma-separated allow-list of origins |
//! | `LOG_FORMAT` | `pretty` on a terminal, else `json` | plus `RUST_LOG` |
//! | `SCHEDULER_ENABLED` | `true` | run the cron schedule in this instance |
//! | `REQUEST_TIMEOUT_SECS` | `30` | a request running longer is answered 503 |
//! | `HEADER_READ_TIMEOUT_SECS` | `10` | a connection that has not sent a whole request head this long after it opened (or after its last response: the keep-alive idle time) is closed |
//! | `BODY_READ_TIMEOUT_SECS` | `10` | a request body still arriving after this is answered 408 |
//! | `AUDIT_RETENTION_DAYS` | `365` | audit entries older than this are archived |
//! | `PAYMENT_REMINDERS_CRON` | `0 0 8 * * *` | when `payment-reminders` runs (service time zone) |
//! | `OVERDUE_CHECK_CRON` | `0 5 0 * * *` | when `overdue-check` runs |
//! | `AUDIT_ARCHIVE_CRON` | `0 0 3 * * Sun` | when `audit-archive` runs |
//! | `EMAIL_QUEUE` | `emails` | queue name (in the database, or in Redis under the prefix) |
//! | `REDIS_KEY_PREFIX` | `loan-tracker` | prefix of every key the service keeps in Redis (cache, rate limits, read routing, the email queue); deployments sharing one Redis need different prefixes |
//! | `READ_YOUR_WRITES_SECS` | `10` | after a user's write, their lists read the primary this long |
//! | `HSTS_MAX_AGE_SECS` | — | send `Strict-Transport-Security` with this max-age (behind HTTPS only) |
//! | `EMAIL_MAX_ATTEMPTS` | `8` | sends of one email before its job is dead |
//! | `EMAIL_RETRY_BACKOFF_MS` | `1000` | first retry delay, doubling up to 64× |
//! | `FOUR_EYES_APPROVAL_AMOUNT` | — (off) | approvals of loans with at least this principal need a second ADMIN |
//! | `FOUR_EYES_REVERSALS` | `false` | reversals need a second person's confirmation |
//!
//! A malformed value is an error naming the variable; start-up stops there.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use chrono_tz::Tz;
use secrecy::SecretString;

use crate::money::{Money, Percent};

/// Token lifetimes above ten years are certainly a typo.
const MAX_TOKEN_TTL_SECS: u64 = 10 * 366 * 24 * 3600;

/// An address or a network (`10.0.0.7`, `172.28.0.0/16`, `fd00::/8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(*ip) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(*ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().map_err(|error| format!("{error}"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= max)
                .ok_or_else(|| format!("the prefix must be 0 to {max}"))?,
            None => max,
        };
        Ok(IpRange { network, prefix })
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Which database the service talks to; chosen by the URL scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

/// A connection URL whose password never reaches a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn kind(&self) -> DatabaseKind {
        if self.0.starts_with("postgres://") || self.0.starts_with("postgresql://") {
            DatabaseKind::Postgres
        } else {
            DatabaseKind::Sqlite
        }
    }

    fn parse(value: &str) -> Result<Self, String> {
        let supported = ["sqlite:", "postgres://", "postgresql://"];
        if supported.iter().any(|prefix| value.starts_with(prefix)) {
            Ok(DatabaseUrl(value.to_owned()))
        } else {
            // A typo must never silently create a fresh empty database.
            Err("must start with sqlite:, postgres:// or postgresql://".to_owned())
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_password(&self.0))
    }
}

/// Replaces the password of `scheme://user:password@host` with `***`.
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The administrator created at start-up when all three variables are set.
#[derive(Clone, Debug)]
pub struct AdminBootstrap {
    pub email: String,
    pub username: String,
    pub password: SecretString,
}

/// Everything the service reads from its environment.
#[derive(Clone, Debug)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    pub database_url: DatabaseUrl,
    pub database_read_url: Option<DatabaseUrl>,
    pub database_max_connections: u32,
    pub redis_url: Option<DatabaseUrl>,
    /// `None` in embedded mode until `main` loads or generates the secret.
    pub jwt_secret: Option<SecretString>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub admin_bootstrap: Option<AdminBootstrap>,
    pub rate_limit_per_minute: u32,
    pub auth_rate_limit_per_minute: u32,
    pub trusted_proxies: Vec<IpRange>,
    pub currency: String,
    pub timezone: Tz,
    pub default_annual_interest_rate: Percent,
    pub late_fee_percent: Percent,
    pub late_fee_grace_days: u32,
    pub reminder_days_before: u32,
    pub loan_min_amount: Money,
    pub loan_max_amount: Money,
    pub smtp_url: Option<DatabaseUrl>,
    pub mail_from: Option<String>,
    pub cors_origins: Vec<String>,
    pub log_format: LogFormat,
    pub scheduler_enabled: bool,
    pub request_timeout: Duration,
    /// Longest wait for a whole request head on a connection, new or
    /// kept alive (so also how long an idle connection stays open).
    pub header_read_timeout: Duration,
    /// Longest wait for a request body to arrive.
    pub body_read_timeout: Duration,
    pub audit_retention_days: u32,
    /// Cron expressions (with seconds) in the service time zone.
    pub payment_reminders_cron: String,
    pub overdue_check_cron: String,
    pub audit_archive_cron: String,
    pub email_queue: String,
    pub email_max_attempts: usize,
    pub email_retry_backoff: Duration,
    pub hsts_max_age_secs: Option<u64>,
    pub redis_key_prefix: String,
    pub read_your_writes: Duration,
    /// Approvals of loans with at least this principal wait for a second
    /// ADMIN (`None`: never).
    pub four_eyes_approval_amount: Option<Money>,
    /// Reversals wait for a second person.
    pub four_eyes_reversals: bool,
}

/// A configuration variable that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("configuration variable {variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_environment() -> Result<Config, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads from a map; tests build configurations this way.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        Self::from_lookup(|name| vars.get(name).cloned())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let vars = Vars { lookup: &lookup };
        let (data_dir, database_url, database_read_url) = vars.databases()?;
        let jwt_secret = vars.jwt_secret(&database_url)?;
        let (loan_min_amount, loan_max_amount) = vars.loan_bounds()?;
        Ok(Config {
            host: vars.parsed("HOST", IpAddr::from([127, 0, 0, 1]))?,
            port: vars.parsed("PORT", 8080u16)?,
            data_dir,
            database_url,
            database_read_url,
            database_max_connections: vars.parsed("DATABASE_MAX_CONNECTIONS", 16u32)?.max(1),
            redis_url: vars.optional_with("REDIS_URL", |url| {
                url_with_scheme(url, &["redis://", "rediss://"])
            })?,
            jwt_secret,
            access_token_ttl: vars.seconds("ACCESS_TOKEN_TTL_SECS", 900, MAX_TOKEN_TTL_SECS)?,
            refresh_token_ttl: vars.seconds(
                "REFRESH_TOKEN_TTL_SECS",
                2_592_000,
                MAX_TOKEN_TTL_SECS,
            )?,
            admin_bootstrap: vars.admin_bootstrap(),
            rate_limit_per_minute: vars.at_least_one("RATE_LIMIT_PER_MINUTE", 300)?,
            auth_rate_limit_per_minute: vars.at_least_one("AUTH_RATE_LIMIT_PER_MINUTE", 10)?,
            trusted_proxies: vars.list("TRUSTED_PROXIES")?,
            currency: vars.currency()?,
            timezone: vars.parsed("TIMEZONE", Tz::UTC)?,
            default_annual_interest_rate: vars.percent("DEFAULT_ANNUAL_INTEREST_RATE", "12.0")?,
            late_fee_percent: vars.percent("LATE_FEE_PERCENT", "5.0")?,
            late_fee_grace_days: vars.parsed("LATE_FEE_GRACE_DAYS", 0u32)?,
            reminder_days_before: vars.at_least_one("REMINDER_DAYS_BEFORE", 3)?,
            loan_min_amount,
            loan_max_amount,
            smtp_url: vars.optional_with("SMTP_URL", |url| {
                url_with_scheme(url, &["smtp://", "smtps://"])
            })?,
            mail_from: vars.raw("MAIL_FROM"),
            cors_origins: vars.list("CORS_ORIGINS")?,
            log_format: vars.log_format()?,
            scheduler_enabled: vars.parsed("SCHEDULER_ENABLED", true)?,
            request_timeout: vars.seconds("REQUEST_TIMEOUT_SECS", 30, u64::MAX)?,
            header_read_timeout: vars.seconds("HEADER_READ_TIMEOUT_SECS", 10, u64::MAX)?,
            body_read_timeout: vars.seconds("BODY_READ_TIMEOUT_SECS", 10, u64::MAX)?,
            audit_retention_days: vars.parsed("AUDIT_RETENTION_DAYS", 365u32)?,
            payment_reminders_cron: vars.cron("PAYMENT_REMINDERS_CRON", "0 0 8 * * *")?,
            overdue_check_cron: vars.cron("OVERDUE_CHECK_CRON", "0 5 0 * * *")?,
            audit_archive_cron: vars.cron("AUDIT_ARCHIVE_CRON", "0 0 3 * * Sun")?,
            email_queue: vars
                .raw("EMAIL_QUEUE")
                .unwrap_or_else(|| "emails".to_owned()),
            email_max_attempts: usize::try_from(vars.bounded("EMAIL_MAX_ATTEMPTS", 8, 100)?)
                .unwrap_or(8),
            email_retry_backoff: Duration::from_millis(vars.bounded(
                "EMAIL_RETRY_BACKOFF_MS",
                1000,
                3_600_000,
            )?),
            hsts_max_age_secs: vars.optional_with("HSTS_MAX_AGE_SECS", |text| {
                text.parse::<u64>()
                    .map_err(|error| format!("cannot parse {text:?}: {error}"))
            })?,
            redis_key_prefix: vars
                .raw("REDIS_KEY_PREFIX")
                .unwrap_or_else(|| "loan-tracker".to_owned()),
            read_your_writes: vars.seconds("READ_YOUR_WRITES_SECS", 10, 3600)?,
            four_eyes_approval_amount: vars.optional_with("FOUR_EYES_APPROVAL_AMOUNT", |text| {
                Money::parse_decimal(text)
                    .map_err(|error| error.to_string())
                    .and_then(|amount| {
                        if amount.is_positive() {
                            Ok(amount)
                        } else {
                            Err("must be a positive amount".to_owned())
                        }
                    })
            })?,
            four_eyes_reversals: vars.parsed("FOUR_EYES_REVERSALS", false)?,
        })
    }

    pub fn listen_address(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.host, self.port)
    }

    /// The late-fee rule these settings describe.
    pub fn late_fee_rule(&self) -> crate::ledger::LateFeeRule {
        crate::ledger::LateFeeRule {
            percent: self.late_fee_percent,
            grace_days: self.late_fee_grace_days,
        }
    }

    pub fn is_embedded(&self) -> bool {
        self.database_url.kind() == DatabaseKind::Sqlite
    }
}

/// Reads and parses variables, turning every failure into a [`ConfigError`]
/// that names the variable.
struct Vars<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

/// `url` if it starts with one of `schemes`.
fn url_with_scheme(url: &str, schemes: &[&str]) -> Result<DatabaseUrl, String> {
    if schemes.iter().any(|scheme| url.starts_with(scheme)) {
        Ok(DatabaseUrl(url.to_owned()))
    } else {
        Err(format!("must start with {}", schemes.join(" or ")))
    }
}

fn refused(variable: &'static str, message: &str) -> ConfigError {
    ConfigError {
        variable,
        message: message.to_owned(),
    }
}

/// The settings that take more than reading one variable.
impl Vars<'_> {
    /// `DATA_DIR`, `DATABASE_URL` (SQLite in the data directory by
    /// default) and `DATABASE_READ_URL` (a replica: PostgreSQL only).
    fn databases(&self) -> Result<(PathBuf, DatabaseUrl, Option<DatabaseUrl>), ConfigError> {
        let data_dir = PathBuf::from(self.raw("DATA_DIR").unwrap_or_else(|| "./data".to_owned()));
        let database_url = match self.raw("DATABASE_URL") {
            Some(value) => self.parse_with("DATABASE_URL", &value, DatabaseUrl::parse)?,
            None => DatabaseUrl(format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("loan-tracker.db").display()
            )),
        };
        let read_url = self.optional_with("DATABASE_READ_URL", DatabaseUrl::parse)?;
        let both_postgres = database_url.kind() == DatabaseKind::Postgres
            && read_url
                .as_ref()
                .is_none_or(|url| url.kind() == DatabaseKind::Postgres);
        if read_url.is_some() && !both_postgres {
            return Err(refused(
                "DATABASE_READ_URL",
                "a read replica needs DATABASE_URL and DATABASE_READ_URL on PostgreSQL",
            ));
        }
        Ok((data_dir, database_url, read_url))
    }

    /// `JWT_SECRET`: at least 32 bytes; required on PostgreSQL, where
    /// several instances must share it.
    fn jwt_secret(&self, database_url: &DatabaseUrl) -> Result<Option<SecretString>, ConfigError> {
        match self.raw("JWT_SECRET") {
            Some(secret) if secret.len() < 32 => {
                Err(refused("JWT_SECRET", "must be at least 32 bytes"))
            }
            Some(secret) => Ok(Some(SecretString::from(secret))),
            None if database_url.kind() == DatabaseKind::Postgres => Err(refused(
                "JWT_SECRET",
                "is required (at least 32 bytes) when DATABASE_URL is PostgreSQL",
            )),
            None => Ok(None),
        }
    }

    /// `ADMIN_EMAIL`, `ADMIN_USERNAME`, `ADMIN_PASSWORD`: all three or none.
    fn admin_bootstrap(&self) -> Option<AdminBootstrap> {
        match (
            self.raw("ADMIN_EMAIL"),
            self.raw("ADMIN_USERNAME"),
            self.raw("ADMIN_PASSWORD"),
        ) {
            (Some(email), Some(username), Some(password)) => Some(AdminBootstrap {
                email,
                username,
                password: SecretString::from(password),
            }),
            _ => None,
        }
    }

    /// `LOG_FORMAT`: pretty on a terminal, JSON otherwise, unless chosen.
    fn log_format(&self) -> Result<LogFormat, ConfigError> {
        match self.raw("LOG_FORMAT").as_deref() {
            None if std::io::IsTerminal::is_terminal(&std::io::stdout()) => Ok(LogFormat::Pretty),
            None => Ok(LogFormat::Json),
            Some("pretty") => Ok(LogFormat::Pretty),
            Some("json") => Ok(LogFormat::Json),
            Some(_) => Err(refused("LOG_FORMAT", "must be pretty or json")),
        }
    }

    /// `CURRENCY`: a three-letter ISO 4217 code.
    fn currency(&self) -> Result<String, ConfigError> {
        let currency = self.raw("CURRENCY").unwrap_or_else(|| "USD".to_owned());
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(refused(
                "CURRENCY",
                "must be a three-letter ISO 4217 code such as USD",
            ));
        }
        Ok(currency)
    }

    /// `LOAN_MIN_AMOUNT` and `LOAN_MAX_AMOUNT`: positive, in order.
    fn loan_bounds(&self) -> Result<(Money, Money), ConfigError> {
        let min: Money = self.parsed("LOAN_MIN_AMOUNT", Money::from_minor(10_000))?;
        let max: Money = self.parsed("LOAN_MAX_AMOUNT", Money::from_minor(100_000_000))?;
        if !min.is_positive() || min > max {
            return Err(refused(
                "LOAN_MIN_AMOUNT",
                "must be positive and not above LOAN_MAX_AMOUNT",
            ));
        }
        Ok((min, max))
    }

    fn percent(&self, variable: &'static str, default: &str) -> Result<Percent, ConfigError> {
        self.parsed(
            variable,
            Percent::parse(default).unwrap_or_else(|_| Percent::zero()),
        )
    }

    /// A whole number of seconds from 1 to `max`.
    fn seconds(
        &self,
        variable: &'static str,
        default: u64,
        max: u64,
    ) -> Result<Duration, ConfigError> {
        self.bounded(variable, default, max)
            .map(Duration::from_secs)
    }

    /// A count from 1 up that fits in a `u32`.
    fn at_least_one(&self, variable: &'static str, default: u32) -> Result<u32, ConfigError> {
        let value = self.positive(variable, u64::from(default))?;
        u32::try_from(value).map_err(|_| refused(variable, "is too large"))
    }
}

impl Vars<'_> {
    /// The value, with empty strings treated as unset (as `.env` files often
    /// leave them).
    fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.trim().is_empty())
    }

    fn parse_with<T>(
        &self,
        variable: &'static str,
        value: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        parse(value.trim()).map_err(|message| ConfigError { variable, message })
    }

    fn optional_with<T>(
        &self,
        variable: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        self.raw(variable)
            .map(|value| self.parse_with(variable, &value, &parse))
            .transpose()
    }

    fn parsed<T>(&self, variable: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.raw(variable) {
            None => Ok(default),
            Some(value) => self.parse_with(variable, &value, |text| {
                text.parse::<T>()
                    .map_err(|error| format!("cannot parse {text:?}: {error}"))
            }),
        }
    }

    fn bounded(&self, variable: &'static str, default: u64, max: u64) -> Result<u64, ConfigError> {
        let value = self.positive(variable, default)?;
        if value > max {
            return Err(ConfigError {
                variable,
                message: format!("must be at most {max}"),
            });
        }
        Ok(value)
    }

    fn positive(&self, variable: &'static str, default: u64) -> Result<u64, ConfigError> {
        let value: u64 = self.parsed(variable, default)?;
        if value == 0 {
            return Err(ConfigError {
                variable,
                message: "must be at least 1".to_owned(),
            });
        }
        Ok(value)
    }

    /// A cron expression with a seconds field, checked now so that a typo
    /// stops start-up instead of silently never running a job.
    fn cron(&self, variable: &'static str, default: &str) -> Result<String, ConfigError> {
        let expression = self.raw(variable).unwrap_or_else(|| default.to_owned());
        cron::Schedule::from_str(&expression).map_err(|error| ConfigError {
            variable,
            message: format!("is not a cron expression (sec min hour day month weekday): {error}"),
        })?;
        Ok(expression)
    }

    fn list<T>(&self, variable: &'static str) -> Result<Vec<T>, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let Some(value) = self.raw(variable) else {
            return Ok(Vec::new());
        };
        value
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse::<T>().map_err(|error| ConfigError {
                    variable,
                    message: format!("cannot parse {item:?}: {error}"),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_map(&vars)
    }

    #[test]
    fn defaults_describe_the_embedded_mode() {
        let config = config(&[("LOG_FORMAT", "json")]).expect("defaults are valid");
        assert_eq!(config.listen_address().to_string(), "127.0.0.1:8080");
        assert_eq!(config.database_url.kind(), DatabaseKind::Sqlite);
        assert!(config.is_embedded());
        assert_eq!(config.currency, "USD");
        assert_eq!(config.loan_max_amount, Money::from_minor(100_000_000));
        assert_eq!(config.default_annual_interest_rate.to_string(), "12.0");
        assert_eq!(config.access_token_ttl, Duration::from_secs(900));
        assert_eq!(config.four_eyes_approval_amount, None);
        assert!(!config.four_eyes_reversals);
        let four_eyes = super::tests::config(&[
            ("FOUR_EYES_APPROVAL_AMOUNT", "50000"),
            ("FOUR_EYES_REVERSALS", "true"),
        ])
        .expect("valid");
        assert_eq!(
            four_eyes.four_eyes_approval_amount,
            Some(Money::from_minor(5_000_000))
        );
        assert!(four_eyes.four_eyes_reversals);
    }

    #[test]
    fn malformed_values_name_their_variable() {
        let cases = [
            ("PORT", "eighty"),
            ("DATABASE_URL", "mysql://localhost/db"),
            ("JWT_SECRET", "short"),
            ("TIMEZONE", "Mars/Olympus"),
            ("LOG_FORMAT", "xml"),
            ("LATE_FEE_PERCENT", "-1"),
            ("LOAN_MAX_AMOUNT", "10.001"),
            ("SCHEDULER_ENABLED", "maybe"),
            ("TRUSTED_PROXIES", "10.0.0.1, not-an-ip"),
            ("CURRENCY", "usd"),
            ("OVERDUE_CHECK_CRON", "every day"),
            ("AUDIT_RETENTION_DAYS", "-3"),
            ("REFRESH_TOKEN_TTL_SECS", "10000000000000"),
            ("FOUR_EYES_APPROVAL_AMOUNT", "lots"),
            ("FOUR_EYES_APPROVAL_AMOUNT", "5000.001"),
            ("FOUR_EYES_APPROVAL_AMOUNT", "0"),
            ("FOUR_EYES_REVERSALS", "yes please"),
        ];
        for (variable, value) in cases {
            match config(&[(variable, value)]) {
                Ok(_) => panic!("{variable}={value} was accepted"),
                Err(error) => assert_eq!(error.variable, variable, "{error}"),
            }
        }
    }

    #[test]
    fn postgres_requires_a_long_jwt_secret() {
        let error = config(&[("DATABASE_URL", "postgres://postgres@127.0.0.1/db")]).err();
        assert_eq!(error.map(|e| e.variable), Some("JWT_SECRET"));
        let secret = "0123456789abcdef0123456789abcdef";
        let ok = config(&[
            ("DATABASE_URL", "postgres://postgres@127.0.0.1/db"),
            ("JWT_SECRET", secret),
        ]);
        assert!(ok.is_ok());
    }

    #[test]
    fn trusted_proxies_may_be_networks() {
        let range: IpRange = "172.28.0.0/16".parse().expect("range");
        assert!(range.contains(&"172.28.3.4".parse().expect("ip")));
        assert!(!range.contains(&"172.29.0.1".parse().expect("ip")));
        let single: IpRange = "10.0.0.7".parse().expect("address");
        assert!(single.contains(&"10.0.0.7".parse().expect("ip")));
        assert!(!single.contains(&"10.0.0.8".parse().expect("ip")));
        let everything: IpRange = "0.0.0.0/0".parse().expect("range");
        assert!(everything.contains(&"8.8.8.8".parse().expect("ip")));
        let v6: IpRange = "fd00::/8".parse().expect("range");
        assert!(v6.contains(&"fd12::1".parse().expect("ip")));
        assert!("10.0.0.0/33".parse::<IpRange>().is_err());
    }

    #[test]
    fn database_url_debug_hides_the_password() {
        let url = DatabaseUrl::parse("postgres://app:hunter2@db:5432/loans").expect("valid url");
        assert_eq!(format!("{url:?}"), "postgres://app:***@db:5432/loans");
    }
}
