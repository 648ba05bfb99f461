//! Access tokens (JWT, HS256) and refresh tokens (opaque, stored hashed).

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::entities::Role;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: Uuid,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
}

/// Verified tokens remembered at most (about 4 MB).
const VERIFIED_TOKENS_KEPT: u64 = 10_000;
/// Our tokens are about 300 bytes; anything much longer is not remembered.
const LONGEST_TOKEN_KEPT: usize = 1024;

pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Tokens whose signature already checked out, with their claims.
    /// Checking an HS256 token (decode, MAC, parse) costs more than the
    /// rest of a cached read; a hit needs the very same token text, so it
    /// proves the same signature. Expiry is still checked on every use.
    verified: moka::sync::Cache<String, AccessClaims>,
    /// Signs the console's form tokens: derived from the same secret, so
    /// no second secret to configure, but never usable as a JWT key.
    form_key: [u8; 32],
    pub access_ttl: std::time::Duration,
    pub refresh_ttl: std::time::Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys").finish_non_exhaustive()
    }
}

/// Why an access token was refused. All of them are a 401 to the client.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("token expired")]
    Expired,
}

impl TokenKeys {
    pub fn new(
        secret: &SecretString,
        access_ttl: std::time::Duration,
        refresh_ttl: std::time::Duration,
    ) -> TokenKeys {
        let secret = secret.expose_secret().as_bytes();
        let form_key = Sha256::new()
            .chain_update(b"loan-tracker console forms\0")
            .chain_update(secret)
            .finalize()
            .into();
        // Only HS256 is accepted; `none` and every other algorithm fail.
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked against the service clock below, not the
        // library's wall clock, so tests can move time.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_TOKENS_KEPT)
                .time_to_live(access_ttl)
                .build(),
            form_key,
            access_ttl,
            refresh_ttl,
        }
    }

    pub fn issue_access(
        &self,
        user_id: Uuid,
        role: Role,
        now: DateTime<Utc>,
    ) -> anyhow::Result<String> {
        let ttl = i64::try_from(self.access_ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = AccessClaims {
            sub: user_id,
            role,
            iat: now.timestamp(),
            exp: now.timestamp().saturating_add(ttl),
            jti: Uuid::now_v7(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    pub fn verify_access(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<AccessClaims, TokenError> {
        let claims = match self.verified.get(token) {
            Some(claims) => claims,
            None => {
                let claims =
                    jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)?
                        .claims;
                if token.len() <= LONGEST_TOKEN_KEPT {
                    self.verified.insert(token.to_owned(), claims.clone());
                }
                claims
            }
        };
        if claims.exp <= now.timestamp() {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

impl TokenKeys {
    /// A token for a form that proves it was served by this service for
    /// `value` (a session, or a sign-in nonce): HMAC-SHA256 over the
    /// purpose and the value, in hex.
    pub fn form_token(&self, purpose: &str, value: &str) -> String {
        hex::encode(self.form_mac(purpose, value).finalize().into_bytes())
    }

    /// Whether `token` is the form token of `purpose` and `value`, compared
    /// in constant time.
    pub fn form_token_matches(&self, purpose: &str, value: &str, token: &str) -> bool {
        hex::decode(token)
            .is_ok_and(|bytes| self.form_mac(purpose, value).verify_slice(&bytes).is_ok())
    }

    fn form_mac(&self, purpose: &str, value: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.form_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(value.as_bytes());
        mac
    }
}

/// A new refresh token and the hash under which it is stored. Only the
/// client ever holds the token itself.
pub fn new_refresh_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
    let hash = hash_refresh_token(&token);
    (token, hash)
}

pub fn hash_refresh_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn keys(secret: &str) -> TokenKeys {
        TokenKeys::new(
            &SecretString::from(secret.to_owned()),
            Duration::from_secs(900),
            Duration::from_secs(3600),
        )
    }

    #[test]
    fn form_tokens_match_only_their_purpose_value_and_secret() {
        let signer = keys("0123456789abcdef0123456789abcdef");
        let token = signer.form_token("session", "abc");
        assert_eq!(token.len(), 64);
        assert!(signer.form_token_matches("session", "abc", &token));
        assert!(!signer.form_token_matches("session", "abd", &token));
        assert!(!signer.form_token_matches("sign-in", "abc", &token));
        assert!(!signer.form_token_matches("session", "abc", &token[..62]));
        assert!(!signer.form_token_matches("session", "abc", "not hex"));
        let other = keys("fedcba9876543210fedcba9876543210");
        assert!(!other.form_token_matches("session", "abc", &token));
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let keys = keys("0123456789abcdef0123456789abcdef");
        let now = Utc::now();
        let user = Uuid::now_v7();
        let token = keys.issue_access(user, Role::Manager, now).expect("issues");
        let claims = keys.verify_access(&token, now).expect("verifies");
        assert_eq!((claims.sub, claims.role), (user, Role::Manager));
        assert_eq!(claims.exp - claims.iat, 900);
        let later = now + chrono::Duration::seconds(900);
        assert!(matches!(
            keys.verify_access(&token, later),
            Err(TokenError::Expired)
        ));
    }

    #[test]
    fn another_key_or_algorithm_is_refused() {
        let now = Utc::now();
        let token = keys("0123456789abcdef0123456789abcdef")
            .issue_access(Uuid::now_v7(), Role::User, now)
            .expect("issues");
        let other = keys("fedcba9876543210fedcba9876543210");
        assert!(other.verify_access(&token, now).is_err());

        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &AccessClaims {
                sub: Uuid::now_v7(),
                role: Role::Admin,
                iat: now.timestamp(),
                exp: now.timestamp() + 60,
                jti: Uuid::now_v7(),
            },
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .expect("encodes");
        assert!(
            keys("0123456789abcdef0123456789abcdef")
                .verify_access(&hs512, now)
                .is_err()
        );
    }

    #[test]
    fn refresh_tokens_are_random_and_stored_hashed() {
        let (first, first_hash) = new_refresh_token();
        let (second, _) = new_refresh_token();
        assert_ne!(first, second);
        assert_eq!(first_hash, hash_refresh_token(&first));
        assert_eq!(first_hash.len(), 64);
    }
}
