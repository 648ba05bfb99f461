//! The shared state every handler receives.

use std::sync::Arc;

use secrecy::SecretString;

use crate::auth::password::Passwords;
use crate::auth::tokens::TokenKeys;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::db::Db;
use crate::http::rate_limit::RateLimiter;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub clock: SharedClock,
    pub tokens: Arc<TokenKeys>,
    pub passwords: Arc<Passwords>,
    /// Login and registration attempts per client IP.
    pub auth_limiter: Arc<RateLimiter>,
    /// All requests per client (user, else IP).
    pub rate_limiter: Arc<RateLimiter>,
}

impl AppState {
    pub fn new(
        config: Config,
        db: Db,
        clock: SharedClock,
        jwt_secret: &SecretString,
    ) -> anyhow::Result<AppState> {
        let tokens = TokenKeys::new(
            jwt_secret,
            config.access_token_ttl,
            config.refresh_token_ttl,
        );
        let auth_limiter = RateLimiter::per_minute(config.auth_rate_limit_per_minute);
        let rate_limiter = RateLimiter::per_minute(config.rate_limit_per_minute);
        Ok(AppState {
            config: Arc::new(config),
            db,
            clock,
            tokens: Arc::new(tokens),
            passwords: Arc::new(Passwords::new()?),
            auth_limiter: Arc::new(auth_limiter),
            rate_limiter: Arc::new(rate_limiter),
        })
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Today's date in the service time zone.
    pub fn today(&self) -> chrono::NaiveDate {
        crate::clock::local_date(self.now(), self.config.timezone)
    }
}
