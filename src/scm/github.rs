//! A small GitHub REST client on octocrab: octocrab provides authentication
//! (token or GitHub App installation), the base URL and HTTP; this module
//! adds bounded retries that respect GitHub's rate limits (`Retry-After`,
//! `x-ratelimit-reset`, secondary limits) and server errors, and typed
//! answers for the calls the publish and `github:*` actions make
//! (`repo.rs`: the operations on one repository; `sealed.rs`: Actions
//! secrets as libsodium sealed boxes).

mod repo;
pub mod sealed;

pub use repo::{
    AutolinkRequest, BranchPolicyKind, Ensured, EnvironmentRequest, HookConfig, HookRequest, Issue, PublicKey, RefKind,
    RepoApi, Reviewer, ReviewerKind, Scope, WorkflowRun,
};

use std::time::Duration;

use http::{HeaderMap, Method, StatusCode};
use octocrab::Octocrab;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::integrations::{GithubCredentials, GithubHost};
use crate::backoff::Backoff;

/// How often and how long a request is retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in total (the first one included).
    pub max_attempts: u32,
    /// Longest wait for a rate limit to reset; a longer one fails the request.
    pub max_wait: Duration,
    /// First wait after a server error or a transport failure (doubles).
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            max_wait: Duration::from_secs(60),
            backoff: Duration::from_millis(500),
        }
    }
}

/// Why an attempt may be worth repeating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retryable {
    /// A rate limit, with the wait GitHub asks for (`rate_limit_wait`).
    RateLimited(Duration),
    /// A server error or a transport failure.
    Transient,
}

impl RetryPolicy {
    /// The wait before the next attempt after attempt `attempt` (from 1)
    /// failed, or `None` to give up: a rate limit waits what GitHub asks
    /// unless that is longer than `max_wait`; other failures wait the
    /// doubling `backoff`; there is no attempt after `max_attempts`.
    pub fn next_wait(&self, attempt: u32, why: Retryable) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        match why {
            Retryable::RateLimited(asked) => (asked <= self.max_wait).then_some(asked),
            Retryable::Transient => Some(Backoff::doubling(self.backoff).delay(attempt.saturating_sub(1))),
        }
    }
}

/// GitHub asks for at least a minute after a secondary rate limit that
/// names no wait.
const SECONDARY_LIMIT_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error("GitHub at {host} rejected the credentials ({status} on {request}): {message}. Check the integration's token or app, or the `token` input")]
    Unauthorized {
        host: String,
        status: u16,
        request: String,
        message: String,
    },
    #[error("GitHub at {host} rate limit exceeded on {request}: {detail}")]
    RateLimited {
        host: String,
        request: String,
        detail: String,
    },
    #[error("GitHub at {host} answered {status} to {request}: {message}")]
    Api {
        host: String,
        status: u16,
        request: String,
        message: String,
        body: Value,
    },
    #[error("cannot reach GitHub at {host} ({request}): {message}")]
    Transport {
        host: String,
        request: String,
        message: String,
    },
    #[error("GitHub at {host} answered {request} with an unexpected body: {message}")]
    Unexpected {
        host: String,
        request: String,
        message: String,
    },
    #[error("cannot authenticate to GitHub at {host}: {message}")]
    Setup { host: String, message: String },
    #[error("the GitHub request was cancelled")]
    Cancelled,
}

impl GithubError {
    pub fn status(&self) -> Option<u16> {
        match self {
            GithubError::Api { status, .. } | GithubError::Unauthorized { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The parts of a repository the actions use, by the names of GitHub's
/// `repository` schema (`GET /repos/{owner}/{repo}`, `POST …/repos`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RepoInfo {
    pub clone_url: String,
    pub html_url: String,
    pub default_branch: Option<String>,
}

/// A pull request as the actions report it (GitHub's `pull-request` and
/// `pull-request-simple` schemas: `number`, `html_url`, `base.ref`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "PullWire")]
pub struct PullInfo {
    pub number: u64,
    pub html_url: String,
    pub base_ref: String,
}

#[derive(Deserialize)]
struct PullWire {
    number: u64,
    html_url: String,
    base: BranchRef,
}

#[derive(Deserialize)]
struct BranchRef {
    #[serde(rename = "ref")]
    name: String,
}

impl From<PullWire> for PullInfo {
    fn from(w: PullWire) -> PullInfo {
        PullInfo {
            number: w.number,
            html_url: w.html_url,
            base_ref: w.base.name,
        }
    }
}

/// `GET /users/{username}`: only whether it is a user or an organization.
#[derive(Deserialize)]
struct Account {
    #[serde(rename = "type")]
    kind: String,
}

pub enum CreateRepo {
    Created(RepoInfo),
    /// 422 "name already exists on this account".
    AlreadyExists,
}

/// Characters left as is in one URL path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// One path segment, percent-encoded (branch names may contain `/`).
pub fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

pub struct GithubClient {
    crab: Octocrab,
    host: String,
    retry: RetryPolicy,
    cancel: CancellationToken,
    git_token: Option<String>,
}

impl GithubClient {
    /// A client for `host`, authenticated with `token` when given (the
    /// action's `token` input), else with the integration's credentials.
    /// GitHub App installation tokens are minted here.
    pub async fn connect(
        host: &GithubHost,
        token: Option<&str>,
        cancel: CancellationToken,
    ) -> Result<GithubClient, GithubError> {
        let setup = |message: String| GithubError::Setup {
            host: host.host.clone(),
            message,
        };
        let builder = Octocrab::builder()
            .base_uri(host.api_base_url.as_str())
            .map_err(|e| {
                setup(format!(
                    "invalid API base URL {}: {}",
                    host.api_base_url,
                    without_backtrace(&e.to_string())
                ))
            })?
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(60)));
        let token = token
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .or_else(|| match &host.credentials {
                GithubCredentials::Token(t) => Some(t.clone()),
                _ => None,
            });
        let (crab, git_token) = match (token, &host.credentials) {
            (Some(token), _) => {
                let crab = builder
                    .personal_token(token.clone())
                    .build()
                    .map_err(|e| setup(describe_octocrab_error(&e)))?;
                (crab, Some(token))
            }
            (
                None,
                GithubCredentials::App {
                    app_id,
                    key,
                    installation_id,
                },
            ) => {
                let app = builder
                    .app(octocrab::models::AppId(*app_id), key.clone())
                    .build()
                    .map_err(|e| setup(describe_octocrab_error(&e)))?;
                let crab = app
                    .installation(octocrab::models::InstallationId(*installation_id))
                    .map_err(|e| setup(describe_octocrab_error(&e)))?;
                let minted = tokio::select! {
                    _ = cancel.cancelled() => return Err(GithubError::Cancelled),
                    t = crab.installation_token() => t.map_err(|e| setup(format!(
                        "cannot mint an installation token for app {app_id}, installation {installation_id}: {}",
                        describe_octocrab_error(&e)
                    )))?,
                };
                (crab, Some(minted.expose_secret().to_owned()))
            }
            (None, _) => (builder.build().map_err(|e| setup(describe_octocrab_error(&e)))?, None),
        };
        Ok(GithubClient {
            crab,
            host: host.host.clone(),
            retry: host.retry.clone(),
            cancel,
            git_token,
        })
    }

    /// The token `git` should present to this host, if any.
    pub fn git_token(&self) -> Option<&str> {
        self.git_token.as_deref()
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Sends one request (retrying as the policy allows) and returns the
    /// JSON body of a successful answer (`Null` when empty).
    pub async fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, GithubError> {
        let request = format!("{method} {path}");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let wait = match self.send_once(&method, path, body).await {
                Ok((status, headers, text)) => {
                    if status.is_success() || status.is_redirection() {
                        return Ok(if text.trim().is_empty() {
                            Value::Null
                        } else {
                            serde_json::from_str(&text).unwrap_or(Value::String(text))
                        });
                    }
                    let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    let message = parsed
                        .get("message")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .unwrap_or_else(|| text.chars().take(300).collect());
                    if let Some(asked) = rate_limit_wait(status, &headers, &message, chrono::Utc::now().timestamp()) {
                        let Some(wait) = self.retry.next_wait(attempt, Retryable::RateLimited(asked)) else {
                            return Err(GithubError::RateLimited {
                                host: self.host.clone(),
                                request,
                                detail: format!(
                                    "{message} (GitHub asks to wait {}s; gave up after {attempt} attempt(s), waiting at most {}s)",
                                    asked.as_secs(),
                                    self.retry.max_wait.as_secs()
                                ),
                            });
                        };
                        tracing::warn!(host = %self.host, %request, wait_seconds = wait.as_secs(), "GitHub rate limit, waiting");
                        wait
                    } else if status == StatusCode::UNAUTHORIZED {
                        return Err(GithubError::Unauthorized {
                            host: self.host.clone(),
                            status: status.as_u16(),
                            request,
                            message,
                        });
                    } else if let Some(wait) = status
                        .is_server_error()
                        .then(|| self.retry.next_wait(attempt, Retryable::Transient))
                        .flatten()
                    {
                        tracing::warn!(host = %self.host, %request, status = status.as_u16(), "GitHub server error, retrying");
                        wait
                    } else {
                        return Err(GithubError::Api {
                            host: self.host.clone(),
                            status: status.as_u16(),
                            request,
                            message,
                            body: parsed,
                        });
                    }
                }
                Err(GithubError::Transport {
                    message,
                    host,
                    request: failed,
                }) => {
                    let Some(wait) = self.retry.next_wait(attempt, Retryable::Transient) else {
                        return Err(GithubError::Transport {
                            host,
                            request: failed,
                            message,
                        });
                    };
                    tracing::warn!(host = %self.host, %request, %message, "GitHub unreachable, retrying");
                    wait
                }
                Err(e) => return Err(e),
            };
            tokio::select! {
                _ = self.cancel.cancelled() => return Err(GithubError::Cancelled),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn send_once(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, HeaderMap, String), GithubError> {
        let transport = |e: octocrab::Error| GithubError::Transport {
            host: self.host.clone(),
            request: format!("{method} {path}"),
            message: describe_octocrab_error(&e),
        };
        let call = async {
            let response = match *method {
                Method::GET => self.crab._get(path).await,
                Method::POST => self.crab._post(path, body).await,
                Method::PUT => self.crab._put(path, body).await,
                Method::PATCH => self.crab._patch(path, body).await,
                Method::DELETE => self.crab._delete(path, body).await,
                _ => self.crab._get(path).await,
            }
            .map_err(transport)?;
            let status = response.status();
            let headers = response.headers().clone();
            let text = self.crab.body_to_string(response).await.map_err(transport)?;
            Ok((status, headers, text))
        };
        tokio::select! {
            _ = self.cancel.cancelled() => Err(GithubError::Cancelled),
            r = call => r,
        }
    }

    /// `GET path`, its answer read as `T` (see `decode`).
    pub async fn get_as<T: DeserializeOwned>(&self, path: &str) -> Result<T, GithubError> {
        let answer = self.request(Method::GET, path, None).await?;
        self.decode(&format!("GET {path}"), answer)
    }

    /// Every item of a paginated list (`GET path?per_page=100&page=n` until a
    /// short page), as octokit's `paginate` collects them.
    pub async fn list_all(&self, path: &str) -> Result<Vec<Value>, GithubError> {
        const PER_PAGE: usize = 100;
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        for page in 1.. {
            let answer = self
                .request(
                    Method::GET,
                    &format!("{path}{separator}per_page={PER_PAGE}&page={page}"),
                    None,
                )
                .await?;
            // A page that is not a list is an error, not an empty page.
            let batch: Vec<Value> = self.decode(&format!("GET {path}"), answer)?;
            let done = batch.len() < PER_PAGE;
            items.extend(batch);
            if done {
                break;
            }
        }
        Ok(items)
    }

    pub async fn get_repo(&self, owner: &str, repo: &str) -> Result<Option<RepoInfo>, GithubError> {
        match self
            .request(Method::GET, &format!("/repos/{}/{}", seg(owner), seg(repo)), None)
            .await
        {
            Ok(v) => self.decode("GET /repos", v).map(Some),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether `owner` is an organization (else a user), as Backstage decides
    /// between `POST /orgs/{org}/repos` and `POST /user/repos`.
    pub async fn is_organization(&self, owner: &str) -> Result<bool, GithubError> {
        let user = self
            .request(Method::GET, &format!("/users/{}", seg(owner)), None)
            .await?;
        let account: Account = self.decode("GET /users", user)?;
        Ok(account.kind == "Organization")
    }

    pub async fn create_repo(&self, owner: &str, organization: bool, body: &Value) -> Result<CreateRepo, GithubError> {
        let path = if organization {
            format!("/orgs/{}/repos", seg(owner))
        } else {
            "/user/repos".to_owned()
        };
        match self.request(Method::POST, &path, Some(body)).await {
            Ok(v) => Ok(CreateRepo::Created(self.decode("POST /repos", v)?)),
            Err(GithubError::Api { status: 422, body, .. }) if name_exists(&body) => Ok(CreateRepo::AlreadyExists),
            Err(e) => Err(e),
        }
    }

    /// The open pull request from `head_owner:branch`, if any.
    pub async fn open_pull_for_branch(
        &self,
        owner: &str,
        repo: &str,
        head_owner: &str,
        branch: &str,
    ) -> Result<Option<PullInfo>, GithubError> {
        let head = utf8_percent_encode(&format!("{head_owner}:{branch}"), SEGMENT).to_string();
        let list = self
            .request(
                Method::GET,
                &format!("/repos/{}/{}/pulls?state=open&head={head}", seg(owner), seg(repo)),
                None,
            )
            .await?;
        let pulls: Vec<PullInfo> = self.decode("GET /pulls", list)?;
        Ok(pulls.into_iter().next())
    }

    pub async fn create_pull(&self, owner: &str, repo: &str, body: &Value) -> Result<PullInfo, GithubError> {
        let v = self
            .request(
                Method::POST,
                &format!("/repos/{}/{}/pulls", seg(owner), seg(repo)),
                Some(body),
            )
            .await?;
        self.decode("POST /pulls", v)
    }

    pub async fn update_pull(
        &self,
        owner: &str,
        repo: &str,
        number: u64,
        body: &Value,
    ) -> Result<PullInfo, GithubError> {
        let path = format!("/repos/{}/{}/pulls/{number}", seg(owner), seg(repo));
        let v = self.request(Method::PATCH, &path, Some(body)).await?;
        self.decode("PATCH /pulls", v)
    }

    /// A successful answer read as `T`; a missing or mistyped field is an
    /// error that names it (serde's "missing field `clone_url`"), never a default.
    // `GithubError` is large (`Api` keeps GitHub's body); every async call here
    // returns it unboxed too, so this helper does the same.
    #[allow(clippy::result_large_err)]
    fn decode<T: DeserializeOwned>(&self, request: &str, body: Value) -> Result<T, GithubError> {
        decode_answer(body).map_err(|message| GithubError::Unexpected {
            host: self.host.clone(),
            request: request.to_owned(),
            message,
        })
    }
}

fn decode_answer<T: DeserializeOwned>(body: Value) -> Result<T, String> {
    serde_json::from_value(body).map_err(|e| e.to_string())
}

fn name_exists(body: &Value) -> bool {
    let mentions = |v: &Value| {
        v.as_str()
            .is_some_and(|m| m.to_ascii_lowercase().contains("already exists"))
    };
    mentions(body.get("message").unwrap_or(&Value::Null))
        || body.get("errors").and_then(Value::as_array).is_some_and(|errors| {
            errors
                .iter()
                .any(|e| mentions(e.get("message").unwrap_or(&Value::Null)))
        })
}

/// How long to wait before retrying a rate-limited answer, `None` when the
/// answer is not a rate limit (a plain 403 is a permission problem).
pub fn rate_limit_wait(status: StatusCode, headers: &HeaderMap, message: &str, now_epoch: i64) -> Option<Duration> {
    if status != StatusCode::FORBIDDEN && status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(seconds) = header("retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(seconds));
    }
    if header("x-ratelimit-remaining") == Some("0") {
        if let Some(reset) = header("x-ratelimit-reset").and_then(|v| v.parse::<i64>().ok()) {
            return Some(Duration::from_secs(
                reset.saturating_sub(now_epoch).max(1).unsigned_abs(),
            ));
        }
    }
    if status == StatusCode::TOO_MANY_REQUESTS || message.to_ascii_lowercase().contains("rate limit") {
        return Some(SECONDARY_LIMIT_WAIT);
    }
    None
}

/// octocrab's errors print only their kind; the source says what happened.
fn describe_octocrab_error(e: &octocrab::Error) -> String {
    let mut text = without_backtrace(&e.to_string()).to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let said = s.to_string();
        let said = without_backtrace(&said);
        // Most kinds already print their source.
        if !text.contains(said) {
            text.push_str(": ");
            text.push_str(said);
        }
        source = s.source();
    }
    text
}

/// octocrab's errors end with "Found at <backtrace>", a whole backtrace when
/// RUST_BACKTRACE or RUST_LIB_BACKTRACE is set: task error messages (shown on
/// Backstage's task page) must not carry it.
fn without_backtrace(text: &str) -> &str {
    match text.find("\nFound at ") {
        Some(end) => text[..end].trim_end(),
        None => text.trim_end(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn the_retry_policy_waits_what_github_asks_or_doubles() {
        let policy = RetryPolicy::default();
        let waits: Vec<_> = (1..=4)
            .map(|attempt| policy.next_wait(attempt, Retryable::Transient))
            .collect();
        assert_eq!(
            waits,
            [Some(500), Some(1000), Some(2000), None].map(|ms| ms.map(Duration::from_millis))
        );
        let asked = Duration::from_secs(7);
        assert_eq!(policy.next_wait(1, Retryable::RateLimited(asked)), Some(asked));
        assert_eq!(policy.next_wait(4, Retryable::RateLimited(asked)), None);
        let too_long = policy.max_wait + Duration::from_secs(1);
        assert_eq!(policy.next_wait(1, Retryable::RateLimited(too_long)), None);
    }

    #[test]
    fn octocrab_backtraces_are_cut_from_messages() {
        assert_eq!(
            without_backtrace("Service Error: error trying to connect\n\nFound at    0: std::backtrace\n   1: x"),
            "Service Error: error trying to connect"
        );
        assert_eq!(without_backtrace("GitHub said no"), "GitHub said no");
    }

    #[test]
    fn rate_limits_are_recognised_from_their_headers() {
        let forbidden = StatusCode::FORBIDDEN;
        assert_eq!(
            rate_limit_wait(forbidden, &headers(&[("retry-after", "3")]), "", 0),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            rate_limit_wait(
                forbidden,
                &headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1010")]),
                "API rate limit exceeded",
                1000
            ),
            Some(Duration::from_secs(10))
        );
        // A reset in the past still waits a moment.
        assert_eq!(
            rate_limit_wait(
                forbidden,
                &headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "5")]),
                "",
                1000
            ),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            rate_limit_wait(
                forbidden,
                &HeaderMap::new(),
                "You have exceeded a secondary rate limit",
                0
            ),
            Some(SECONDARY_LIMIT_WAIT)
        );
        assert_eq!(
            rate_limit_wait(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), "", 0),
            Some(SECONDARY_LIMIT_WAIT)
        );
        assert_eq!(
            rate_limit_wait(forbidden, &HeaderMap::new(), "Resource not accessible", 0),
            None
        );
        assert_eq!(
            rate_limit_wait(StatusCode::NOT_FOUND, &headers(&[("retry-after", "1")]), "", 0),
            None
        );
    }

    #[test]
    fn answers_are_typed_and_a_missing_field_is_named() {
        let repo: RepoInfo = decode_answer(serde_json::json!({
            "clone_url": "https://github.com/o/r.git",
            "html_url": "https://github.com/o/r",
            "default_branch": "main",
            "name": "r",
        }))
        .unwrap();
        assert_eq!(repo.default_branch.as_deref(), Some("main"));
        let missing = decode_answer::<RepoInfo>(serde_json::json!({"html_url": "https://github.com/o/r"}));
        assert!(
            missing.as_ref().is_err_and(|e| e.contains("missing field `clone_url`")),
            "{missing:?}"
        );
        let pulls: Vec<PullInfo> = decode_answer(serde_json::json!([
            {"number": 3, "html_url": "https://github.com/o/r/pull/3", "base": {"ref": "develop"}, "state": "open"}
        ]))
        .unwrap();
        assert_eq!(
            pulls,
            [PullInfo {
                number: 3,
                html_url: "https://github.com/o/r/pull/3".into(),
                base_ref: "develop".into()
            }]
        );
        let no_url = decode_answer::<PullInfo>(serde_json::json!({"number": 3, "base": {"ref": "main"}}));
        assert!(
            no_url.as_ref().is_err_and(|e| e.contains("missing field `html_url`")),
            "{no_url:?}"
        );
        let no_type = decode_answer::<Account>(serde_json::json!({"login": "o"}));
        assert!(no_type.is_err_and(|e| e.contains("missing field `type`")));
    }

    #[test]
    fn name_exists_matches_githubs_422() {
        let body = serde_json::json!({"message": "Repository creation failed.",
            "errors": [{"resource": "Repository", "code": "custom", "field": "name",
                        "message": "name already exists on this account"}]});
        assert!(name_exists(&body));
        assert!(!name_exists(
            &serde_json::json!({"message": "Validation Failed", "errors": []})
        ));
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(seg("feature/x y"), "feature%2Fx%20y");
        assert_eq!(seg("my-repo.v2_x"), "my-repo.v2_x");
    }
}
