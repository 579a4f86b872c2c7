//! Who is calling: Backstage user tokens (ES256 JWTs checked against the
//! auth backend's JWKS), static bearer tokens for services, and anonymous
//! access (by default only on a loopback address). The HTTP layer asks
//! [`Authenticator::authenticate`] for a [`Caller`]; the services apply the
//! ownership rules with it.

mod jwks;
pub mod permissions;

use std::collections::HashSet;
use std::net::IpAddr;

use crate::config::{Settings, TokenAccess};

pub use jwks::{parse_jwks, JwksVerifier, UserClaims};

/// Missing or invalid credentials (401 `AuthenticationError`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("Missing credentials")]
    Missing,
    #[error("Could not resolve credentials; caused by AuthenticationError: {0}")]
    Invalid(String),
}

impl AuthError {
    pub fn invalid(message: impl Into<String>) -> AuthError {
        AuthError::Invalid(message.into())
    }

    /// The underlying reason, reported as the error's `cause`.
    pub fn cause(&self) -> Option<&str> {
        match self {
            AuthError::Missing => None,
            AuthError::Invalid(m) => Some(m),
        }
    }
}

/// A configuration that would serve the API to anyone (or to no one).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AuthConfigError(pub String);

/// How the caller proved who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum Identity {
    /// No credentials, where anonymous access is allowed.
    Anonymous,
    /// A Backstage user token: `sub` and the ownership refs (`ent`).
    User {
        entity_ref: String,
        ownership: Vec<String>,
        token: String,
    },
    /// A static token from `auth.tokens`.
    Service { subject: String },
    /// A GitHub Actions workflow run (its OIDC ID token).
    Ci(CiPrincipal),
}

/// Who a GitHub Actions OIDC ID token says is calling: one run of one
/// workflow of one repository, at one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiPrincipal {
    /// `repository:<host>/<owner>/<repo>`: the task's `createdBy`, and the
    /// owner a service's marker in infra-gitops must name.
    pub subject: String,
    /// The GitHub host.
    pub host: String,
    /// `owner/repo`
    pub repository: String,
    /// `refs/heads/main`, `refs/tags/v1.2.0`, …
    pub git_ref: String,
    /// `owner/repo/.github/workflows/ci.yaml@refs/heads/main`
    pub workflow_ref: String,
    /// The commit the run built.
    pub sha: String,
    pub run_id: String,
    pub run_attempt: Option<String>,
}

impl CiPrincipal {
    /// The workflow file: `.github/workflows/ci.yaml` of `workflow_ref`.
    pub fn workflow_path(&self) -> &str {
        let without_ref = self
            .workflow_ref
            .split_once('@')
            .map_or(self.workflow_ref.as_str(), |(p, _)| p);
        without_ref
            .strip_prefix(self.repository.as_str())
            .map_or(without_ref, |rest| rest.trim_start_matches('/'))
    }

    /// The identity a keyless (Fulcio) certificate of this workflow names.
    pub fn certificate_identity(&self) -> String {
        format!("https://{}/{}", self.host, self.workflow_ref)
    }
}

/// The claims of a GitHub Actions OIDC ID token this service reads.
#[derive(Debug, serde::Deserialize)]
struct ActionsClaims {
    repository: String,
    #[serde(rename = "ref")]
    git_ref: String,
    workflow_ref: String,
    sha: String,
    run_id: String,
    #[serde(default)]
    run_attempt: Option<String>,
}

/// The authenticated caller of one request.
#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    pub identity: Identity,
    /// Sees, cancels and retries every task (admins, `access: all` tokens,
    /// anonymous callers where they are allowed).
    pub sees_all: bool,
    /// The id of the request being served (`x-request-id`), for the audit trail.
    pub request_id: Option<String>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.identity {
            Identity::Anonymous => write!(f, "Caller(anonymous)"),
            Identity::User { entity_ref, .. } => write!(f, "Caller(user {entity_ref}, all: {})", self.sees_all),
            Identity::Service { subject } => write!(f, "Caller(service {subject}, all: {})", self.sees_all),
            Identity::Ci(ci) => write!(f, "Caller(ci {} run {})", ci.workflow_ref, ci.run_id),
        }
    }
}

impl Caller {
    pub fn is_anonymous(&self) -> bool {
        matches!(self.identity, Identity::Anonymous)
    }

    pub fn anonymous() -> Caller {
        Caller {
            identity: Identity::Anonymous,
            sees_all: true,
            request_id: None,
        }
    }

    /// What tasks created by this caller carry as `createdBy`.
    pub fn subject(&self) -> Option<&str> {
        match &self.identity {
            Identity::Anonymous => None,
            Identity::User { entity_ref, .. } => Some(entity_ref),
            Identity::Service { subject } => Some(subject),
            Identity::Ci(ci) => Some(&ci.subject),
        }
    }

    /// The workflow run behind a GitHub Actions token.
    pub fn ci(&self) -> Option<&CiPrincipal> {
        match &self.identity {
            Identity::Ci(ci) => Some(ci),
            _ => None,
        }
    }

    /// The user's Backstage token, forwarded to the catalog.
    pub fn backstage_token(&self) -> Option<&str> {
        match &self.identity {
            Identity::User { token, .. } => Some(token),
            _ => None,
        }
    }

    /// The ownership entity refs of a Backstage user token (`ent`): the user
    /// and the groups it belongs to.
    pub fn ownership(&self) -> &[String] {
        match &self.identity {
            Identity::User { ownership, .. } => ownership,
            _ => &[],
        }
    }

    pub fn is_user(&self) -> bool {
        matches!(self.identity, Identity::User { .. })
    }

    /// Whether a task created by `created_by` is visible to this caller.
    pub fn may_see(&self, created_by: Option<&str>) -> bool {
        self.sees_all || (created_by.is_some() && created_by == self.subject())
    }

    /// The `createdBy` every list query of this caller is limited to; `None`
    /// for callers that see everything.
    pub fn list_restriction(&self) -> Option<&str> {
        if self.sees_all {
            None
        } else {
            self.subject()
        }
    }
}

struct StaticToken {
    token: String,
    subject: String,
    access: TokenAccess,
}

/// Turns an `Authorization` header into a [`Caller`].
pub struct Authenticator {
    allow_anonymous: bool,
    /// Host names besides loopback ones that anonymous requests may address.
    anonymous_hosts: Vec<String>,
    backstage: Option<JwksVerifier>,
    /// GitHub Actions ID tokens: the verifier, the issuer and the host.
    github_actions: Option<(JwksVerifier, String, String)>,
    tokens: Vec<StaticToken>,
    admins: HashSet<String>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("allow_anonymous", &self.allow_anonymous)
            .field("anonymous_hosts", &self.anonymous_hosts)
            .field("backstage", &self.backstage.is_some())
            .field(
                "github_actions",
                &self.github_actions.as_ref().map(|(_, issuer, _)| issuer),
            )
            .field("tokens", &self.tokens.len())
            .field("admins", &self.admins)
            .finish()
    }
}

/// Whether `bind` (`host:port`) listens on a loopback address only.
pub fn is_loopback_bind(bind: &str) -> bool {
    let host = match bind.rsplit_once(':') {
        Some((host, _)) => host,
        None => bind,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The name in a `Host` header without its port: `[::1]:7007` is `::1`,
/// `localhost:7007` is `localhost`.
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(name, _)| name);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Whether a `Host` header names this machine's loopback interface:
/// `localhost`, `*.localhost`, `127.0.0.0/8` or `[::1]`, with any port.
/// A DNS-rebinding page reaches a local server under a name of its own, so
/// its requests never carry one of these.
pub fn is_loopback_host(host: &str) -> bool {
    let name = host_name(host).trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    match name.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

impl Authenticator {
    /// Reads token files and checks that the configuration does not expose
    /// the API to anyone by accident: binding a non-loopback address needs
    /// an auth mode or an explicit `auth.allow_anonymous: true`.
    pub fn from_settings(settings: &Settings) -> Result<Authenticator, AuthConfigError> {
        let auth = &settings.auth;
        let mut tokens = Vec::new();
        for (i, t) in auth.tokens.iter().enumerate() {
            let token = match (&t.token, &t.token_file) {
                (Some(token), _) => token.expose().to_owned(),
                (None, Some(file)) => std::fs::read_to_string(file)
                    .map_err(|e| {
                        AuthConfigError(format!(
                            "cannot read auth.tokens[{i}].token_file {}: {e}",
                            file.display()
                        ))
                    })?
                    .trim()
                    .to_owned(),
                (None, None) => String::new(),
            };
            if token.len() < 8 {
                return Err(AuthConfigError(format!(
                    "auth.tokens[{i}] ({}) has no token of at least 8 characters",
                    t.subject
                )));
            }
            tokens.push(StaticToken {
                token,
                subject: t.subject.clone(),
                access: t.access,
            });
        }
        let backstage = match &auth.backstage {
            Some(b) => Some(JwksVerifier::new(b)?),
            None => None,
        };
        let github_actions = match &auth.github_actions {
            Some(g) => Some((JwksVerifier::github_actions(g)?, g.issuer.clone(), g.host.clone())),
            None => None,
        };
        let has_mode = backstage.is_some() || github_actions.is_some() || !tokens.is_empty();
        let loopback = is_loopback_bind(&settings.server.bind);
        let allow_anonymous = auth.allow_anonymous.unwrap_or(loopback && !has_mode);
        if !has_mode && !allow_anonymous {
            return Err(AuthConfigError(if loopback {
                "auth.allow_anonymous is false but no auth mode is configured: nobody could call the API. \
                 Configure auth.backstage or auth.tokens"
                    .into()
            } else {
                format!(
                    "refusing to serve on {} without authentication: anyone who reaches this address could run \
                     templates. Configure auth.backstage (Backstage user tokens) or auth.tokens, or set \
                     auth.allow_anonymous: true (SCAFFOLDER__AUTH__ALLOW_ANONYMOUS=true) to accept anonymous \
                     callers on purpose",
                    settings.server.bind
                )
            }));
        }
        Ok(Authenticator {
            allow_anonymous,
            anonymous_hosts: auth
                .anonymous_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
            backstage,
            github_actions,
            tokens,
            admins: auth.admins.iter().cloned().collect(),
        })
    }

    /// Whether any credentials are checked at all (else the header is ignored).
    pub fn enabled(&self) -> bool {
        self.backstage.is_some() || self.github_actions.is_some() || !self.tokens.is_empty()
    }

    pub fn allows_anonymous(&self) -> bool {
        self.allow_anonymous
    }

    /// Whether an anonymous request may be served under this `Host` header:
    /// loopback names always, others only when listed in
    /// `auth.anonymous_hosts` (`*`: any). No header (HTTP/1.0, not a
    /// browser) names no host to rebind.
    pub fn anonymous_host_allowed(&self, host: Option<&str>) -> bool {
        let Some(host) = host else { return true };
        if is_loopback_host(host) {
            return true;
        }
        let name = host_name(host).trim_end_matches('.').to_ascii_lowercase();
        self.anonymous_hosts
            .iter()
            .any(|allowed| allowed == "*" || *allowed == name || *allowed == host.trim().to_ascii_lowercase())
    }

    /// The caller behind an `Authorization` header value (if any).
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        if !self.enabled() {
            return Ok(Caller::anonymous());
        }
        let Some(header) = authorization.map(str::trim).filter(|h| !h.is_empty()) else {
            return if self.allow_anonymous {
                Ok(Caller::anonymous())
            } else {
                Err(AuthError::Missing)
            };
        };
        let token = match header.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => token.trim(),
            _ => {
                return Err(AuthError::invalid(
                    "Illegal authorization header: expected 'Bearer <token>'",
                ))
            }
        };
        if let Some(t) = self
            .tokens
            .iter()
            .find(|t| constant_time_eq(t.token.as_bytes(), token.as_bytes()))
        {
            return Ok(Caller {
                identity: Identity::Service {
                    subject: t.subject.clone(),
                },
                sees_all: t.access == TokenAccess::All,
                request_id: None,
            });
        }
        if token.split('.').count() != 3 {
            return Err(AuthError::invalid("Illegal token"));
        }
        if let Some((verifier, issuer, host)) = &self.github_actions {
            if unverified_issuer(token).as_deref() == Some(issuer.as_str()) {
                return github_actions_caller(verifier, host, token).await;
            }
        }
        let Some(verifier) = &self.backstage else {
            return Err(AuthError::invalid("Illegal token"));
        };
        let claims = verifier.verify(token).await?;
        let sees_all = self.admins.contains(&claims.sub);
        Ok(Caller {
            identity: Identity::User {
                entity_ref: claims.sub,
                ownership: claims.ent,
                token: token.to_owned(),
            },
            sees_all,
            request_id: None,
        })
    }
}

/// The `iss` claim of a JWT, read before any check: it only picks the
/// verifier, which then checks everything (the issuer included).
fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

async fn github_actions_caller(verifier: &JwksVerifier, host: &str, token: &str) -> Result<Caller, AuthError> {
    let claims: ActionsClaims = verifier.verify_claims(token).await?;
    let repository_ok = claims
        .repository
        .split_once('/')
        .is_some_and(|(owner, repo)| !owner.is_empty() && !repo.is_empty() && !repo.contains('/'));
    if !repository_ok || claims.sha.is_empty() || claims.run_id.is_empty() || claims.workflow_ref.is_empty() {
        return Err(AuthError::invalid(
            "Illegal token: a GitHub Actions token needs 'repository' (owner/repo), 'ref', 'workflow_ref', 'sha' and 'run_id'",
        ));
    }
    Ok(Caller {
        identity: Identity::Ci(CiPrincipal {
            subject: format!("repository:{host}/{}", claims.repository),
            host: host.to_owned(),
            repository: claims.repository,
            git_ref: claims.git_ref,
            workflow_ref: claims.workflow_ref,
            sha: claims.sha,
            run_id: claims.run_id,
            run_attempt: claims.run_attempt,
        }),
        sees_all: false,
        request_id: None,
    })
}

/// Equality whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StaticTokenSettings;

    fn settings(bind: &str) -> Settings {
        let mut s = Settings::default();
        s.server.bind = bind.into();
        s
    }

    #[test]
    fn loopback_binds_are_recognised() {
        for bind in ["127.0.0.1:7007", "127.0.0.1:0", "localhost:7007", "[::1]:7007"] {
            assert!(is_loopback_bind(bind), "{bind}");
        }
        for bind in ["0.0.0.0:7007", "[::]:7007", "10.0.0.1:80", "example.com:7007"] {
            assert!(!is_loopback_bind(bind), "{bind}");
        }
    }

    #[test]
    fn loopback_hosts_are_recognised_with_any_port() {
        for host in [
            "localhost",
            "localhost:7007",
            "LocalHost.:80",
            "app.localhost:3000",
            "127.0.0.1",
            "127.0.0.1:7007",
            "127.1.2.3:1",
            "[::1]",
            "[::1]:7007",
            "[::ffff:127.0.0.1]:7007",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:7007",
            "localhost.evil.example",
            "127.0.0.1.nip.io:7007",
            "10.0.0.1:7007",
            "[::]:7007",
            "0.0.0.0:7007",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn anonymous_hosts_extend_the_loopback_names() {
        let mut s = settings("0.0.0.0:7007");
        s.auth.allow_anonymous = Some(true);
        s.auth.anonymous_hosts = vec!["scaffolder".into(), "Docs.Internal:8080".into()];
        let auth = Authenticator::from_settings(&s).unwrap();
        assert!(auth.anonymous_host_allowed(None));
        assert!(auth.anonymous_host_allowed(Some("localhost:7007")));
        assert!(auth.anonymous_host_allowed(Some("scaffolder:7007")));
        assert!(auth.anonymous_host_allowed(Some("docs.internal:8080")));
        assert!(!auth.anonymous_host_allowed(Some("evil.example")));
        s.auth.anonymous_hosts = vec!["*".into()];
        let auth = Authenticator::from_settings(&s).unwrap();
        assert!(auth.anonymous_host_allowed(Some("evil.example")));
    }

    #[test]
    fn anonymous_access_needs_loopback_or_an_explicit_yes() {
        assert!(Authenticator::from_settings(&settings("127.0.0.1:7007"))
            .unwrap()
            .allows_anonymous());
        let err = Authenticator::from_settings(&settings("0.0.0.0:7007")).unwrap_err();
        assert!(err.to_string().contains("allow_anonymous"), "{err}");
        let mut s = settings("0.0.0.0:7007");
        s.auth.allow_anonymous = Some(true);
        assert!(Authenticator::from_settings(&s).unwrap().allows_anonymous());
        let mut s = settings("0.0.0.0:7007");
        s.auth.tokens.push(StaticTokenSettings {
            token: Some("0123456789".into()),
            token_file: None,
            subject: "service:ci".into(),
            access: TokenAccess::All,
        });
        assert!(!Authenticator::from_settings(&s).unwrap().allows_anonymous());
    }

    #[tokio::test]
    async fn static_tokens_and_missing_credentials() {
        let mut s = settings("127.0.0.1:7007");
        s.auth.tokens.push(StaticTokenSettings {
            token: Some("0123456789".into()),
            token_file: None,
            subject: "service:ci".into(),
            access: TokenAccess::Own,
        });
        let auth = Authenticator::from_settings(&s).unwrap();
        let caller = auth.authenticate(Some("Bearer 0123456789")).await.unwrap();
        assert_eq!(caller.subject(), Some("service:ci"));
        assert!(!caller.sees_all);
        assert!(caller.may_see(Some("service:ci")));
        assert!(!caller.may_see(None));
        assert!(matches!(auth.authenticate(None).await, Err(AuthError::Missing)));
        assert!(matches!(
            auth.authenticate(Some("Bearer nope")).await,
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(
            auth.authenticate(Some("Basic 0123456789")).await,
            Err(AuthError::Invalid(_))
        ));
        assert!(!constant_time_eq(b"abc", b"abd"));
    }
}
