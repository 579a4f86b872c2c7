//! Backstage user tokens: ES256 JWTs verified against the auth backend's
//! JWKS (`<backstage>/api/auth/.well-known/jwks.json`). Keys are cached by
//! `kid`; an unknown `kid` refreshes the set, at most once per
//! `min_refresh` (a flood of forged key ids cannot turn into a flood of
//! downloads).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::AuthError;
use crate::config::BackstageAuthSettings;

/// The claims of a Backstage user token this service reads.
#[derive(Debug, Deserialize)]
pub struct UserClaims {
    pub sub: String,
    #[serde(default)]
    pub ent: Vec<String>,
}

struct KeySet {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

pub struct JwksVerifier {
    http: reqwest::Client,
    jwks_url: String,
    validation: Validation,
    min_refresh: Duration,
    keys: Mutex<KeySet>,
}

impl JwksVerifier {
    pub fn new(settings: &BackstageAuthSettings) -> Result<JwksVerifier, super::AuthConfigError> {
        let jwks_url = settings.jwks_url.clone().unwrap_or_else(|| {
            format!(
                "{}/api/auth/.well-known/jwks.json",
                settings.base_url.trim_end_matches('/')
            )
        });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| super::AuthConfigError(format!("cannot build the JWKS client: {e}")))?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.algorithms = vec![Algorithm::ES256];
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        match &settings.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &settings.issuer {
            validation.set_issuer(&[iss]);
        }
        Ok(JwksVerifier {
            http,
            jwks_url,
            validation,
            min_refresh: Duration::from_secs(settings.jwks_min_refresh_seconds),
            keys: Mutex::new(KeySet {
                keys: HashMap::new(),
                fetched_at: None,
            }),
        })
    }

    /// Verifies signature, algorithm and expiry and returns the claims.
    pub async fn verify(&self, token: &str) -> Result<UserClaims, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::invalid("Illegal token"))?;
        if header.alg != Algorithm::ES256 {
            return Err(AuthError::invalid(format!(
                "Illegal token: algorithm {:?} is not accepted, only ES256",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| AuthError::invalid("Illegal token: the header has no key id"))?;
        let key = self.key(&kid).await?;
        let data = jsonwebtoken::decode::<UserClaims>(token, &key, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::invalid("Token has expired"),
                ErrorKind::InvalidSignature => AuthError::invalid("Illegal token: invalid signature"),
                ErrorKind::InvalidAudience => AuthError::invalid("Illegal token: wrong audience"),
                ErrorKind::InvalidIssuer => AuthError::invalid("Illegal token: wrong issuer"),
                ErrorKind::MissingRequiredClaim(c) => AuthError::invalid(format!("Illegal token: no '{c}' claim")),
                _ => AuthError::invalid("Illegal token"),
            }
        })?;
        if data.claims.sub.is_empty() {
            return Err(AuthError::invalid("Illegal token: empty 'sub' claim"));
        }
        Ok(data.claims)
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        let mut set = self.keys.lock().await;
        if let Some(key) = set.keys.get(kid) {
            return Ok(key.clone());
        }
        let may_refresh = set.fetched_at.map_or(true, |at| at.elapsed() >= self.min_refresh);
        if may_refresh {
            set.fetched_at = Some(Instant::now());
            match self.download().await {
                Ok(keys) => set.keys = keys,
                Err(e) => {
                    tracing::warn!(url = %self.jwks_url, error = %e, "cannot refresh the Backstage JWKS");
                    if set.keys.is_empty() {
                        // Let the next request try again instead of waiting out the rate limit.
                        set.fetched_at = None;
                    }
                }
            }
        }
        set.keys
            .get(kid)
            .cloned()
            .ok_or_else(|| AuthError::invalid(format!("Illegal token: unknown key id '{kid}'")))
    }

    async fn download(&self) -> Result<HashMap<String, DecodingKey>, String> {
        let response = self.http.get(&self.jwks_url).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        Ok(parse_jwks(&body))
    }
}

/// The P-256 keys of a JWKS document by `kid`; other keys are skipped.
pub fn parse_jwks(body: &Value) -> HashMap<String, DecodingKey> {
    let mut keys = HashMap::new();
    for jwk in body.get("keys").and_then(Value::as_array).into_iter().flatten() {
        let field = |k: &str| jwk.get(k).and_then(Value::as_str);
        let usable = field("kty") == Some("EC")
            && field("crv") == Some("P-256")
            && field("alg").map_or(true, |a| a == "ES256")
            && field("use").map_or(true, |u| u == "sig");
        let (Some(kid), Some(x), Some(y)) = (field("kid"), field("x"), field("y")) else {
            continue;
        };
        if !usable {
            continue;
        }
        if let Ok(key) = DecodingKey::from_ec_components(x, y) {
            keys.insert(kid.to_owned(), key);
        }
    }
    keys
}
