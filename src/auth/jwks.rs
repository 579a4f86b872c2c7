//! JWTs verified against an issuer's JWKS: Backstage user tokens (ES256,
//! `<backstage>/api/auth/.well-known/jwks.json`) and GitHub Actions OIDC ID
//! tokens (RS256, the JWKS named by the issuer's
//! `/.well-known/openid-configuration`). Keys are cached by `kid`; an
//! unknown `kid` refreshes the set, at most once per `min_refresh` (a flood
//! of forged key ids cannot turn into a flood of downloads).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::AuthError;
use crate::config::{BackstageAuthSettings, GithubActionsAuthSettings};

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

/// Where the keys are: a JWKS URL, or the issuer whose OpenID discovery
/// document names it (looked up once, on the first download).
enum JwksSource {
    Url(String),
    Discovery { issuer: String },
}

pub struct JwksVerifier {
    http: reqwest::Client,
    source: JwksSource,
    /// The discovered JWKS URL.
    discovered: Mutex<Option<String>>,
    validation: Validation,
    algorithm: Algorithm,
    min_refresh: Duration,
    keys: Mutex<KeySet>,
}

fn http_client() -> Result<reqwest::Client, super::AuthConfigError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| super::AuthConfigError(format!("cannot build the JWKS client: {e}")))
}

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: String,
}

impl JwksVerifier {
    pub fn new(settings: &BackstageAuthSettings) -> Result<JwksVerifier, super::AuthConfigError> {
        let jwks_url = settings.jwks_url.clone().unwrap_or_else(|| {
            format!(
                "{}/api/auth/.well-known/jwks.json",
                settings.base_url.trim_end_matches('/')
            )
        });
        let http = http_client()?;
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
            source: JwksSource::Url(jwks_url),
            discovered: Mutex::new(None),
            validation,
            algorithm: Algorithm::ES256,
            min_refresh: Duration::from_secs(settings.jwks_min_refresh_seconds),
            keys: Mutex::new(KeySet {
                keys: HashMap::new(),
                fetched_at: None,
            }),
        })
    }

    /// GitHub Actions OIDC ID tokens: RS256, issuer and audience required.
    pub fn github_actions(settings: &GithubActionsAuthSettings) -> Result<JwksVerifier, super::AuthConfigError> {
        if settings.audience.trim().is_empty() {
            return Err(super::AuthConfigError(
                "auth.github_actions.audience must be set (the audience CI requests its token for)".into(),
            ));
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = vec![Algorithm::RS256];
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        validation.set_audience(&[&settings.audience]);
        validation.set_issuer(&[&settings.issuer]);
        Ok(JwksVerifier {
            http: http_client()?,
            source: match &settings.jwks_url {
                Some(url) => JwksSource::Url(url.clone()),
                None => JwksSource::Discovery {
                    issuer: settings.issuer.clone(),
                },
            },
            discovered: Mutex::new(None),
            validation,
            algorithm: Algorithm::RS256,
            min_refresh: Duration::from_secs(settings.jwks_min_refresh_seconds),
            keys: Mutex::new(KeySet {
                keys: HashMap::new(),
                fetched_at: None,
            }),
        })
    }

    /// Verifies signature, algorithm and expiry and returns the claims.
    pub async fn verify(&self, token: &str) -> Result<UserClaims, AuthError> {
        let claims: UserClaims = self.verify_claims(token).await?;
        if claims.sub.is_empty() {
            return Err(AuthError::invalid("Illegal token: empty 'sub' claim"));
        }
        Ok(claims)
    }

    /// Verifies signature, algorithm, issuer, audience and expiry, and reads
    /// the claims as `T`.
    pub async fn verify_claims<T: DeserializeOwned>(&self, token: &str) -> Result<T, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::invalid("Illegal token"))?;
        if header.alg != self.algorithm {
            return Err(AuthError::invalid(format!(
                "Illegal token: algorithm {:?} is not accepted, only {:?}",
                header.alg, self.algorithm
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| AuthError::invalid("Illegal token: the header has no key id"))?;
        let key = self.key(&kid).await?;
        let data = jsonwebtoken::decode::<T>(token, &key, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::invalid("Token has expired"),
                ErrorKind::InvalidSignature => AuthError::invalid("Illegal token: invalid signature"),
                ErrorKind::InvalidAudience => AuthError::invalid("Illegal token: wrong audience"),
                ErrorKind::InvalidIssuer => AuthError::invalid("Illegal token: wrong issuer"),
                ErrorKind::MissingRequiredClaim(c) => AuthError::invalid(format!("Illegal token: no '{c}' claim")),
                ErrorKind::Json(e) => AuthError::invalid(format!("Illegal token: {e}")),
                _ => AuthError::invalid("Illegal token"),
            }
        })?;
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
                    tracing::warn!(error = %e, "cannot refresh the JWKS");
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

    async fn jwks_url(&self) -> Result<String, String> {
        let issuer = match &self.source {
            JwksSource::Url(url) => return Ok(url.clone()),
            JwksSource::Discovery { issuer } => issuer,
        };
        let mut discovered = self.discovered.lock().await;
        if let Some(url) = &*discovered {
            return Ok(url.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        let response = self.http.get(&url).send().await.map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        let document: Discovery = response.json().await.map_err(|e| format!("{url}: {e}"))?;
        *discovered = Some(document.jwks_uri.clone());
        Ok(document.jwks_uri)
    }

    async fn download(&self) -> Result<HashMap<String, DecodingKey>, String> {
        let jwks_url = self.jwks_url().await?;
        let response = self
            .http
            .get(&jwks_url)
            .send()
            .await
            .map_err(|e| format!("{jwks_url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{jwks_url}: HTTP {}", response.status()));
        }
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        Ok(parse_jwks(&body))
    }
}

/// The P-256 and RSA signing keys of a JWKS document by `kid`; other keys
/// are skipped. Which algorithm a token may use is the verifier's, not the
/// key's, choice.
pub fn parse_jwks(body: &Value) -> HashMap<String, DecodingKey> {
    let mut keys = HashMap::new();
    for jwk in body.get("keys").and_then(Value::as_array).into_iter().flatten() {
        let field = |k: &str| jwk.get(k).and_then(Value::as_str);
        if field("kty") == Some("RSA") {
            let usable = field("alg").map_or(true, |a| a == "RS256") && field("use").map_or(true, |u| u == "sig");
            if let (true, Some(kid), Some(n), Some(e)) = (usable, field("kid"), field("n"), field("e")) {
                if let Ok(key) = DecodingKey::from_rsa_components(n, e) {
                    keys.insert(kid.to_owned(), key);
                }
            }
            continue;
        }
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
