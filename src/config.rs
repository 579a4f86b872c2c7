//! One typed configuration tree: built-in defaults, then an optional YAML file,
//! then environment variables (`SCAFFOLDER__SECTION__KEY`, `__` nests; plus the
//! conventional `DATABASE_URL`), then command-line flags.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

mod secret;
mod typed;

pub use secret::{DatabaseUrl, Secret};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid YAML: {source}")]
    Parse { path: PathBuf, source: serde_norway::Error },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub templates: TemplateSettings,
    pub worker: WorkerSettings,
    pub log: LogSettings,
    pub integrations: IntegrationSettings,
    pub catalog: CatalogSettings,
    pub auth: AuthSettings,
    pub permission: PermissionSettings,
    pub secrets: SecretsSettings,
    pub limits: LimitsSettings,
    pub telemetry: TelemetrySettings,
    pub default_environment: DefaultEnvironmentSettings,
    pub gitops: GitopsSettings,
    pub actions: ActionsSettings,
    pub promotion: PromotionSettings,
}

/// Where actions come from besides the built-in ones.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionsSettings {
    /// Action bridges (`bridge/`, docs/action-bridge.md): Node processes that
    /// host Backstage scaffolder modules and run their actions for us.
    pub bridges: Vec<BridgeSettings>,
}

/// One action bridge.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeSettings {
    /// The bridge's base URL, e.g. `http://127.0.0.1:7008`.
    pub url: String,
    /// The bridge's `ACTION_BRIDGE_TOKEN`, sent as a bearer token.
    pub token: Secret,
    /// The bridge sees our workspaces at the same paths (a sidecar sharing
    /// the work directory): nothing is copied. `false`: the workspace is
    /// shipped to the bridge and back with every step.
    #[serde(default)]
    pub shared_workspace: bool,
    /// How often the list of the bridge's actions is read again.
    #[serde(default = "default_bridge_refresh")]
    pub refresh_seconds: u64,
}

fn default_bridge_refresh() -> u64 {
    30
}

/// Promotion of built images through the GitOps repository
/// (`POST /v2/promotions`; docs/gitops.md, "Promotion").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromotionSettings {
    /// The GitOps repository promotions write to, as a `repoUrl`
    /// (`github.com?owner=acme&repo=infra-gitops`, `git.local?…`). Unset:
    /// promotions are refused.
    pub repo_url: Option<String>,
    /// The branch Argo CD follows.
    pub branch: String,
    /// Git refs a CI caller may promote from.
    pub allowed_refs: Vec<String>,
    /// Workflow files a CI caller may promote from.
    pub allowed_workflows: Vec<String>,
    /// Registries spoken to over plain HTTP (`host:port`; development only).
    pub insecure_registries: Vec<String>,
    /// PEM public keys (`cosign.pub`) whose signatures are trusted.
    pub public_key_files: Vec<PathBuf>,
    /// PEM root certificates keyless (Fulcio) certificates must chain to.
    pub keyless_roots_file: Option<PathBuf>,
    /// The OIDC issuer keyless certificates must name.
    pub keyless_issuer: String,
    /// Argo CD's API, for stages that wait until the previous stage is Synced and Healthy.
    pub argocd_url: Option<String>,
    pub argocd_token: Option<Secret>,
    /// How long such a stage waits.
    pub health_timeout_seconds: u64,
    /// Who may approve a promotion into a stage whose clusters ask for it
    /// (`promotion.requiresApproval` in `clusters/<c>/cluster.yaml`).
    pub approvers: PromotionApprovers,
    /// How long such a promotion waits for a decision before it fails.
    pub approval_timeout_seconds: u64,
}

/// Approvers of gated promotions: user and group entity refs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromotionApprovers {
    pub users: Vec<String>,
    pub groups: Vec<String>,
}

impl Default for PromotionApprovers {
    fn default() -> Self {
        PromotionApprovers {
            users: Vec::new(),
            groups: vec!["group:default/platform".into()],
        }
    }
}

impl Default for PromotionSettings {
    fn default() -> Self {
        PromotionSettings {
            repo_url: None,
            branch: "main".into(),
            allowed_refs: vec!["refs/heads/main".into()],
            allowed_workflows: vec![".github/workflows/ci.yml".into()],
            insecure_registries: Vec::new(),
            public_key_files: Vec::new(),
            keyless_roots_file: None,
            keyless_issuer: "https://token.actions.githubusercontent.com".into(),
            argocd_url: None,
            argocd_token: None,
            health_timeout_seconds: 600,
            approvers: PromotionApprovers::default(),
            approval_timeout_seconds: 72 * 3600,
        }
    }
}

/// The GitOps repository as the clusters see it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitopsSettings {
    /// The URL Argo CD clones the GitOps repository from (written into the
    /// ApplicationSets), when it differs from the repository's https clone
    /// URL: SSH, a mirror, or the real host behind the local git host.
    pub argocd_repo_url: Option<String>,
}

/// Backstage's `scaffolder.defaultEnvironment`: values every template sees
/// as `environment.parameters.*` and `environment.secrets.*`. The secrets are
/// redacted from task logs and outputs, and empty in dry-runs, as in Backstage.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DefaultEnvironmentSettings {
    pub parameters: std::collections::BTreeMap<String, String>,
    pub secrets: std::collections::BTreeMap<String, String>,
}

impl std::fmt::Debug for DefaultEnvironmentSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefaultEnvironmentSettings")
            .field("parameters", &self.parameters)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Backstage's permission framework (`permission.enabled` in Backstage's
/// app-config): when on, every request of a Backstage user is authorized by
/// the permission backend with the scaffolder's permissions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PermissionSettings {
    pub enabled: bool,
    /// The Backstage backend serving `/api/permission/authorize`; default
    /// `auth.backstage.base_url`.
    pub base_url: Option<String>,
    /// How long a decision is reused for the same token and permission.
    pub cache_seconds: u64,
    /// Most decisions kept at once.
    pub cache_entries: usize,
    /// How long one request to the permission backend may take.
    pub timeout_seconds: u64,
}

impl Default for PermissionSettings {
    fn default() -> Self {
        PermissionSettings {
            enabled: false,
            base_url: None,
            cache_seconds: 10,
            cache_entries: 10_000,
            timeout_seconds: 5,
        }
    }
}

/// Metrics and trace export (logging itself is `log`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// When set, `GET /metrics` requires `Authorization: Bearer <token>`; unset: open, like `/readyz`.
    pub metrics_token: Option<Secret>,
    /// OTLP/HTTP collector base URL (`http://otel-collector:4318`); spans go to `<url>/v1/traces`.
    /// Unset: no traces are exported.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            metrics_token: None,
            otlp_endpoint: None,
            service_name: "scaffolder".into(),
        }
    }
}

/// How task secrets are encrypted at rest (see `crate::secrets`).
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsSettings {
    /// `id:base64key` entries (32-byte keys); the first encrypts, all decrypt.
    pub keys: Vec<Secret>,
    /// Used when `keys` is empty: a key file created (mode 0600) on first start.
    /// Default `$XDG_DATA_HOME/scaffolder/secrets.key`, else `./data/secrets.key`.
    pub key_file: Option<PathBuf>,
}

/// Shows key ids only, so that printing the settings never prints a key.
impl std::fmt::Debug for SecretsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self
            .keys
            .iter()
            .map(|k| k.expose().split_once(':').map_or("<malformed>", |(id, _)| id))
            .collect();
        f.debug_struct("SecretsSettings")
            .field("keys", &ids)
            .field("key_file", &self.key_file)
            .finish()
    }
}

impl SecretsSettings {
    /// The key file, resolving the default from the environment.
    pub fn key_file(&self) -> PathBuf {
        if let Some(file) = &self.key_file {
            return file.clone();
        }
        match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            Some(base) => PathBuf::from(base).join("scaffolder/secrets.key"),
            None => PathBuf::from("data/secrets.key"),
        }
    }
}

/// Instruction budget of one render (`limits.template_fuel`): enough for the
/// largest real templates many times over, small enough to stop a runaway
/// loop within a second.
pub const DEFAULT_FUEL: u64 = 5_000_000;

/// Largest text one render may produce (`limits.template_output_bytes`).
pub const DEFAULT_OUTPUT_LIMIT: usize = 64 * 1024 * 1024;

/// Bounds on what one request, template or task may consume.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSettings {
    /// Files in a dry-run's `directoryContents`.
    pub dry_run_files: usize,
    /// Total decoded size of a dry-run's `directoryContents`, in bytes.
    pub dry_run_bytes: u64,
    /// Longest a dry-run may run.
    pub dry_run_timeout_seconds: u64,
    /// Files (and directories) in one skeleton read by `fetch:template`/`fetch:plain`.
    pub skeleton_files: usize,
    /// Total size of one skeleton, in bytes.
    pub skeleton_bytes: u64,
    /// Total size of a task's workspace, checked after every step, in bytes.
    pub workspace_bytes: u64,
    /// Instruction budget of one template render.
    pub template_fuel: u64,
    /// Largest text one render may produce, in bytes.
    pub template_output_bytes: usize,
    /// Events one task may write; beyond it, log events are dropped after one marker event.
    pub events_per_task: u64,
    /// Event streams (`GET …/eventstream`) open at once per client (principal, else peer IP) and process.
    pub sse_streams_per_client: usize,
}

impl Default for LimitsSettings {
    fn default() -> Self {
        LimitsSettings {
            dry_run_files: 1000,
            dry_run_bytes: 8 * 1024 * 1024,
            dry_run_timeout_seconds: 120,
            skeleton_files: 10_000,
            skeleton_bytes: 100 * 1024 * 1024,
            workspace_bytes: 1024 * 1024 * 1024,
            template_fuel: DEFAULT_FUEL,
            template_output_bytes: DEFAULT_OUTPUT_LIMIT,
            events_per_task: 10_000,
            sse_streams_per_client: 20,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address the HTTP server binds to.
    pub bind: String,
    /// Largest accepted request body in bytes.
    pub body_limit_bytes: usize,
    /// How long `GET …/events` waits for new events before answering `[]`.
    pub long_poll_seconds: u64,
    /// Interval of the SSE keep-alive comment.
    pub sse_keepalive_seconds: u64,
    /// Seconds to let in-flight requests finish on shutdown.
    pub shutdown_grace_seconds: u64,
    /// Cross-origin access for browser clients (Backstage's `backend.cors`); unset: no CORS headers.
    pub cors: Option<CorsSettings>,
}

/// Backstage's `backend.cors`: which browser origins may call the API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsSettings {
    /// Allowed origins (`http://localhost:3000`); `*` allows any origin.
    pub origins: Vec<String>,
    /// Allowed methods.
    pub methods: Vec<String>,
    /// Allowed request headers; empty: any header the preflight asks for.
    pub headers: Vec<String>,
    /// Whether credentials (cookies, `Authorization`) may be sent.
    pub credentials: bool,
    /// How long browsers may cache a preflight answer.
    pub max_age_seconds: Option<usize>,
}

impl Default for CorsSettings {
    fn default() -> Self {
        CorsSettings {
            origins: Vec::new(),
            methods: ["GET", "HEAD", "PATCH", "POST", "PUT", "DELETE"]
                .into_iter()
                .map(String::from)
                .collect(),
            headers: Vec::new(),
            credentials: true,
            max_age_seconds: None,
        }
    }
}

/// Who may call the API. The modes combine: Backstage user tokens, static
/// bearer tokens and anonymous access.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Accept requests without credentials (they see every task). Default:
    /// only while bound to a loopback address and no other mode is configured.
    pub allow_anonymous: Option<bool>,
    /// Verify Backstage user tokens (ES256) against the auth backend's JWKS.
    pub backstage: Option<BackstageAuthSettings>,
    /// Accept GitHub Actions OIDC ID tokens (RS256) as CI callers: the
    /// workflow's repository, ref and workflow file become the caller.
    pub github_actions: Option<GithubActionsAuthSettings>,
    /// Static bearer tokens for services and scripts.
    pub tokens: Vec<StaticTokenSettings>,
    /// User entity refs that see, cancel and retry every task.
    pub admins: Vec<String>,
    /// Host names (with an optional port; `*`: any) that anonymous requests
    /// may carry in `Host` besides loopback names. Anything else is refused,
    /// so a web page cannot reach an anonymous server through DNS rebinding.
    pub anonymous_hosts: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackstageAuthSettings {
    /// The Backstage backend, e.g. `http://backstage:7007`.
    pub base_url: String,
    /// Default `<base_url>/api/auth/.well-known/jwks.json`.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Required `iss` claim, when set (Backstage: `<base_url>/api/auth`).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Required `aud` claim, when set (Backstage: `backstage`).
    #[serde(default)]
    pub audience: Option<String>,
    /// Least time between two JWKS downloads triggered by unknown key ids.
    #[serde(default = "default_jwks_refresh")]
    pub jwks_min_refresh_seconds: u64,
}

fn default_jwks_refresh() -> u64 {
    30
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubActionsAuthSettings {
    /// Required `iss` claim; its `/.well-known/openid-configuration` names
    /// the JWKS unless `jwks_url` is set. Default GitHub.com's
    /// `https://token.actions.githubusercontent.com`.
    #[serde(default = "default_github_actions_issuer")]
    pub issuer: String,
    /// Required `aud` claim: what the workflow asks its token for
    /// (`core.getIDToken(audience)` / `&audience=` on the request URL).
    pub audience: String,
    /// The JWKS, when it is not the one the issuer's discovery document names.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// The GitHub host of the repositories (`repository:<host>/<owner>/<repo>`
    /// is the caller's subject and the owner a promotion is checked against).
    #[serde(default = "default_github_host")]
    pub host: String,
    /// Least time between two JWKS downloads triggered by unknown key ids.
    #[serde(default = "default_jwks_refresh")]
    pub jwks_min_refresh_seconds: u64,
}

fn default_github_actions_issuer() -> String {
    "https://token.actions.githubusercontent.com".into()
}

fn default_github_host() -> String {
    "github.com".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticTokenSettings {
    /// The token itself…
    #[serde(default)]
    pub token: Option<Secret>,
    /// …or a file holding it (surrounding whitespace is ignored).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Who the caller is, e.g. `service:ci` or `user:default/robot`; tasks it creates carry it as `createdBy`.
    pub subject: String,
    /// `own` (default): only tasks it created; `all`: every task.
    #[serde(default)]
    pub access: TokenAccess,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TokenAccess {
    #[default]
    Own,
    All,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// PostgreSQL connection URL. `DATABASE_URL` overrides it.
    pub url: DatabaseUrl,
    pub max_connections: u32,
    /// Create the database named in `url` when it does not exist yet.
    pub create_if_missing: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplateSettings {
    /// Directories scanned for `*/template.yaml`.
    pub dirs: Vec<PathBuf>,
    /// Template files at git URLs (`https://github.com/o/r/blob/main/t/template.yaml`,
    /// or the local git host `https://git.local/o/r/blob/main/t/template.yaml`), read at start.
    pub urls: Vec<String>,
    /// Where fetched templates and skeletons are cached (by commit); default
    /// `$XDG_CACHE_HOME/scaffolder`, else the system temp dir.
    pub cache_dir: Option<PathBuf>,
}

impl TemplateSettings {
    /// The cache directory, resolving the default from the environment.
    pub fn cache_dir(&self) -> PathBuf {
        if let Some(dir) = &self.cache_dir {
            return dir.clone();
        }
        match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
            Some(base) => PathBuf::from(base).join("scaffolder"),
            None => std::env::temp_dir().join("scaffolder-cache"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSettings {
    /// Run the task worker in this process.
    pub enabled: bool,
    /// Tasks run at once by this process.
    pub concurrency: usize,
    /// Lease length; a task whose lease expired is taken over by another replica.
    pub lease_seconds: u64,
    /// Heartbeat interval (renews the lease).
    pub heartbeat_seconds: u64,
    /// Fallback poll when no notification arrives.
    pub poll_seconds: u64,
    /// Where task workspaces are created (default: the system temp dir).
    pub work_dir: Option<PathBuf>,
    /// Where dry-runs lay out their uploads and workspace. Default: a
    /// RAM-backed directory when the machine has one (`/dev/shm` mounted as
    /// tmpfs; a dry-run holds at most `limits.dry_run_bytes` of uploads and
    /// is deleted when it answers), else `work_dir`. An action bridge that
    /// shares the workspace keeps dry-runs in `work_dir`, where it sees them.
    pub dry_run_dir: Option<PathBuf>,
    /// Take over tasks whose worker died and resume them from their first
    /// unfinished step (a template may ask to start over instead).
    pub recover: bool,
    /// Claims of one task (first run, takeovers) before it is failed.
    pub max_attempts: i32,
    /// A running task whose lease expired this long ago and that nobody took
    /// over is failed.
    pub abandoned_after_seconds: u64,
    /// On shutdown, how long running tasks may go on before they are
    /// released to another replica.
    pub shutdown_grace_seconds: u64,
    /// The longest one attempt of a task may run; steps can set a shorter
    /// `timeout` of their own.
    pub task_timeout_seconds: u64,
    /// Save the workspace with every finished step (sealed, in PostgreSQL),
    /// so a retry or a takeover resumes on the files the finished steps
    /// left. Off, a resumed task starts its first unfinished step on an
    /// empty workspace.
    pub save_workspace: bool,
    /// How long a failed or cancelled task keeps its saved workspace for a
    /// retry; after that its journal goes too and a retry starts over.
    pub workspace_retention_hours: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `json` or `pretty`.
    pub format: LogFormat,
    /// An `EnvFilter` directive, e.g. `info,scaffolder=debug`. `RUST_LOG` overrides it.
    pub level: String,
}

/// SCM hosts publishing and `parseRepoUrl` know (Backstage's `integrations`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntegrationSettings {
    /// GitHub (and GitHub Enterprise) hosts. `github.com` without credentials
    /// is always known, as in Backstage.
    pub github: Vec<GithubIntegrationSettings>,
    /// The local git host: bare repositories in a directory.
    pub local_git: LocalGitSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubIntegrationSettings {
    /// Host name as written in `repoUrl` (`github.com`, `ghe.example.com`).
    pub host: String,
    /// REST API base; default `https://api.github.com` for github.com,
    /// `https://<host>/api/v3` otherwise.
    #[serde(default)]
    pub api_base_url: Option<String>,
    /// A personal access token (or fine-grained token).
    #[serde(default)]
    pub token: Option<Secret>,
    /// GitHub App credentials; preferred over `token` when both are set.
    #[serde(default)]
    pub app: Option<GithubAppSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubAppSettings {
    pub app_id: u64,
    /// PEM file with the app's RSA private key.
    pub private_key_file: PathBuf,
    pub installation_id: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalGitSettings {
    pub enabled: bool,
    /// Host name as written in `repoUrl` (`git.local?owner=acme&repo=svc`).
    pub host: String,
    /// Directory of bare repositories (`<dir>/<owner>/<repo>.git`); default
    /// `$XDG_DATA_HOME/scaffolder/git`, else `./data/git`.
    pub dir: Option<PathBuf>,
}

impl Default for LocalGitSettings {
    fn default() -> Self {
        LocalGitSettings {
            enabled: true,
            host: "git.local".into(),
            dir: None,
        }
    }
}

impl LocalGitSettings {
    /// The repository directory, resolving the default from the environment.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.dir {
            return dir.clone();
        }
        match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            Some(base) => PathBuf::from(base).join("scaffolder/git"),
            None => PathBuf::from("data/git"),
        }
    }
}

/// The Backstage catalog that `catalog:*` actions talk to.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogSettings {
    /// Catalog API base, e.g. `http://backstage:7007/api/catalog`. Unset: no catalog.
    pub base_url: Option<String>,
    /// Service token sent when the task has no initiator token.
    pub token: Option<Secret>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            bind: "127.0.0.1:7007".into(),
            body_limit_bytes: 10 * 1024 * 1024,
            long_poll_seconds: 30,
            sse_keepalive_seconds: 15,
            shutdown_grace_seconds: 30,
            cors: None,
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: DatabaseUrl::from("postgres://postgres@127.0.0.1:5432/scaffolder"),
            max_connections: 20,
            create_if_missing: true,
        }
    }
}

impl Default for TemplateSettings {
    fn default() -> Self {
        TemplateSettings {
            dirs: vec![PathBuf::from("templates")],
            urls: Vec::new(),
            cache_dir: None,
        }
    }
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            enabled: true,
            concurrency: 10,
            lease_seconds: 30,
            heartbeat_seconds: 5,
            poll_seconds: 10,
            work_dir: None,
            dry_run_dir: None,
            recover: true,
            max_attempts: 5,
            abandoned_after_seconds: 3600,
            shutdown_grace_seconds: 10,
            task_timeout_seconds: 3600,
            save_workspace: true,
            workspace_retention_hours: 168,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Json,
            level: "info".into(),
        }
    }
}

const ENV_PREFIX: &str = "SCAFFOLDER__";

impl Settings {
    /// Defaults, then `file`, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Settings::load_from(file, &env)
    }

    /// Same as [`Settings::load`] with an explicit environment (for tests).
    pub fn load_from(file: Option<&Path>, env: &[(String, String)]) -> Result<Settings, ConfigError> {
        let mut tree = Value::Object(Map::new());
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            let parsed: Value = serde_norway::from_str(&text).map_err(|source| ConfigError::Parse {
                path: path.to_owned(),
                source,
            })?;
            if !parsed.is_null() {
                tree = parsed;
            }
        }
        for (key, value) in env {
            if key == "DATABASE_URL" {
                set_path(&mut tree, &["database", "url"], Value::String(value.clone()));
            } else if let Some(rest) = key.strip_prefix(ENV_PREFIX) {
                let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
                let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                // Kept as text: the field's type decides what it becomes.
                set_path(&mut tree, &refs, Value::String(value.clone()));
            }
        }
        let settings =
            Settings::deserialize(typed::Typed::root(tree)).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.worker.concurrency == 0 {
            return Err(ConfigError::Invalid("worker.concurrency must be at least 1".into()));
        }
        if self.worker.heartbeat_seconds == 0 || self.worker.heartbeat_seconds >= self.worker.lease_seconds {
            return Err(ConfigError::Invalid(
                "worker.heartbeat_seconds must be at least 1 and below worker.lease_seconds".into(),
            ));
        }
        if self.worker.max_attempts < 1 {
            return Err(ConfigError::Invalid("worker.max_attempts must be at least 1".into()));
        }
        if self.server.body_limit_bytes == 0 {
            return Err(ConfigError::Invalid("server.body_limit_bytes must be positive".into()));
        }
        self.validate_integrations()?;
        self.validate_limits()?;
        if let Some(url) = &self.catalog.base_url {
            check_http_url("catalog.base_url", url)?;
        }
        self.validate_auth()?;
        self.validate_telemetry()?;
        self.validate_bridges()?;
        Ok(())
    }

    fn validate_telemetry(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.telemetry.otlp_endpoint {
            check_http_url("telemetry.otlp_endpoint", url)?;
        }
        if self
            .telemetry
            .metrics_token
            .as_ref()
            .is_some_and(|t| t.expose().len() < 8)
        {
            return Err(ConfigError::Invalid(
                "telemetry.metrics_token must be at least 8 characters".into(),
            ));
        }
        if self.telemetry.service_name.trim().is_empty() {
            return Err(ConfigError::Invalid("telemetry.service_name must not be empty".into()));
        }
        Ok(())
    }

    fn validate_bridges(&self) -> Result<(), ConfigError> {
        for (i, bridge) in self.actions.bridges.iter().enumerate() {
            check_http_url(&format!("actions.bridges[{i}].url"), &bridge.url)?;
            if bridge.token.expose().len() < 8 {
                return Err(ConfigError::Invalid(format!(
                    "actions.bridges[{i}].token must be at least 8 characters"
                )));
            }
            if bridge.refresh_seconds == 0 {
                return Err(ConfigError::Invalid(format!(
                    "actions.bridges[{i}].refresh_seconds must be positive"
                )));
            }
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        for (key, value) in [
            ("dry_run_files", l.dry_run_files as u64),
            ("dry_run_bytes", l.dry_run_bytes),
            ("dry_run_timeout_seconds", l.dry_run_timeout_seconds),
            ("skeleton_files", l.skeleton_files as u64),
            ("skeleton_bytes", l.skeleton_bytes),
            ("workspace_bytes", l.workspace_bytes),
            ("template_fuel", l.template_fuel),
            ("template_output_bytes", l.template_output_bytes as u64),
            ("events_per_task", l.events_per_task),
            ("sse_streams_per_client", l.sse_streams_per_client as u64),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("limits.{key} must be positive")));
            }
        }
        if l.events_per_task < 10 {
            return Err(ConfigError::Invalid(
                "limits.events_per_task must be at least 10".into(),
            ));
        }
        Ok(())
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        if let Some(backstage) = &self.auth.backstage {
            check_http_url("auth.backstage.base_url", &backstage.base_url)?;
            if let Some(url) = &backstage.jwks_url {
                check_http_url("auth.backstage.jwks_url", url)?;
            }
        }
        for (i, token) in self.auth.tokens.iter().enumerate() {
            if token.subject.trim().is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "auth.tokens[{i}].subject must not be empty"
                )));
            }
            match (&token.token, &token.token_file) {
                (Some(t), None) if t.expose().len() >= 8 => {}
                (Some(_), None) => {
                    return Err(ConfigError::Invalid(format!(
                        "auth.tokens[{i}].token must be at least 8 characters"
                    )))
                }
                (None, Some(_)) => {}
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "auth.tokens[{i}] needs exactly one of token and token_file"
                    )))
                }
            }
        }
        if let Some(cors) = &self.server.cors {
            if cors.origins.is_empty() {
                return Err(ConfigError::Invalid(
                    "server.cors.origins must list at least one origin".into(),
                ));
            }
            for origin in cors.origins.iter().filter(|o| o.as_str() != "*") {
                check_http_url("server.cors.origins", origin)?;
            }
        }
        Ok(())
    }

    fn validate_integrations(&self) -> Result<(), ConfigError> {
        let mut hosts: Vec<&str> = Vec::new();
        for (i, github) in self.integrations.github.iter().enumerate() {
            let host = github.host.trim();
            if host.is_empty() || host.contains(['/', '?', '#', ' ']) {
                return Err(ConfigError::Invalid(format!(
                    "integrations.github[{i}].host must be a host name (with an optional port), got {:?}",
                    github.host
                )));
            }
            if let Some(url) = &github.api_base_url {
                check_http_url(&format!("integrations.github[{i}].api_base_url"), url)?;
            }
            if github.token.as_ref().is_some_and(|t| t.expose().is_empty()) {
                return Err(ConfigError::Invalid(format!("integrations.github[{i}].token is empty")));
            }
            hosts.push(host);
        }
        let local = &self.integrations.local_git;
        if local.enabled {
            if local.host.is_empty() || local.host.contains(['/', '?', '#', ' ']) {
                return Err(ConfigError::Invalid(format!(
                    "integrations.local_git.host must be a host name, got {:?}",
                    local.host
                )));
            }
            hosts.push(&local.host);
        }
        let mut sorted = hosts.clone();
        sorted.sort_unstable();
        if let Some(pair) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(ConfigError::Invalid(format!(
                "integration host {} is configured more than once",
                pair[0]
            )));
        }
        Ok(())
    }
}

fn check_http_url(key: &str, raw: &str) -> Result<(), ConfigError> {
    match url::Url::parse(raw) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(()),
        _ => Err(ConfigError::Invalid(format!(
            "{key} must be an http(s) URL, got {raw:?}"
        ))),
    }
}

fn set_path(tree: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = tree;
    for key in parents {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let Value::Object(map) = node else { return };
        node = map.entry(key.to_string()).or_insert_with(|| Value::Object(Map::new()));
    }
    if !node.is_object() {
        *node = Value::Object(Map::new());
    }
    if let Value::Object(map) = node {
        map.insert(last.to_string(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_work_out_of_the_box() {
        let s = Settings::load_from(None, &[]).unwrap();
        assert_eq!(s.server.bind, "127.0.0.1:7007");
        assert_eq!(s.worker.concurrency, 10);
        assert_eq!(s.server.body_limit_bytes, 10 * 1024 * 1024);
    }

    #[test]
    fn action_bridges_come_from_the_file_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(
            &file,
            "actions:\n  bridges:\n    - url: http://127.0.0.1:7008\n      token: bridge-token-1\n      shared_workspace: true\n",
        )
        .unwrap();
        let s = Settings::load_from(Some(&file), &[]).unwrap();
        let bridge = &s.actions.bridges[0];
        assert_eq!(bridge.url, "http://127.0.0.1:7008");
        assert!(bridge.shared_workspace);
        assert_eq!(bridge.refresh_seconds, 30);
        assert!(!format!("{s:?}").contains("bridge-token-1"));
        for (yaml, key) in [
            ("url: ftp://x\n      token: bridge-token-1", "actions.bridges[0].url"),
            ("url: http://x\n      token: short", "actions.bridges[0].token"),
            (
                "url: http://x\n      token: bridge-token-1\n      refresh_seconds: 0",
                "actions.bridges[0].refresh_seconds",
            ),
        ] {
            std::fs::write(&file, format!("actions:\n  bridges:\n    - {yaml}\n")).unwrap();
            let err = Settings::load_from(Some(&file), &[]).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn environment_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, "server:\n  bind: 0.0.0.0:1\nworker:\n  concurrency: 3\n").unwrap();
        let s = Settings::load_from(
            Some(&file),
            &env(&[
                ("SCAFFOLDER__WORKER__CONCURRENCY", "7"),
                ("DATABASE_URL", "postgres://x/y"),
                ("SCAFFOLDER__TEMPLATES__DIRS", "a,b"),
            ]),
        )
        .unwrap();
        assert_eq!(s.server.bind, "0.0.0.0:1");
        assert_eq!(s.worker.concurrency, 7);
        assert_eq!(s.database.url.expose(), "postgres://x/y");
        assert_eq!(s.templates.dirs, vec![PathBuf::from("a"), PathBuf::from("b")]);
    }

    #[test]
    fn limits_and_secret_keys_come_from_the_environment() {
        let s = Settings::load_from(
            None,
            &env(&[
                ("SCAFFOLDER__LIMITS__EVENTS_PER_TASK", "50"),
                ("SCAFFOLDER__LIMITS__SSE_STREAMS_PER_CLIENT", "3"),
                ("SCAFFOLDER__LIMITS__TEMPLATE_FUEL", "1000"),
                ("SCAFFOLDER__SECRETS__KEYS", "new:AAAA,old:BBBB"),
                ("SCAFFOLDER__SECRETS__KEY_FILE", "/run/keys/secrets.key"),
            ]),
        )
        .unwrap();
        assert_eq!(s.limits.events_per_task, 50);
        assert_eq!(s.limits.sse_streams_per_client, 3);
        assert_eq!(s.limits.template_fuel, 1000);
        assert_eq!(s.limits.dry_run_files, LimitsSettings::default().dry_run_files);
        let keys: Vec<&str> = s.secrets.keys.iter().map(Secret::expose).collect();
        assert_eq!(keys, ["new:AAAA", "old:BBBB"]);
        assert_eq!(s.secrets.key_file(), PathBuf::from("/run/keys/secrets.key"));
        let printed = format!("{:?}", s.secrets);
        assert!(printed.contains("new") && !printed.contains("AAAA"), "{printed}");
        let err = Settings::load_from(None, &env(&[("SCAFFOLDER__LIMITS__SKELETON_FILES", "0")])).unwrap_err();
        assert!(err.to_string().contains("limits.skeleton_files"), "{err}");
    }

    #[test]
    fn environment_values_take_the_type_of_their_field() {
        let s = Settings::load_from(
            None,
            &env(&[
                // Strings that look like numbers or booleans stay strings.
                ("SCAFFOLDER__TELEMETRY__METRICS_TOKEN", "12345678"),
                ("SCAFFOLDER__CATALOG__TOKEN", "000123"),
                ("SCAFFOLDER__TELEMETRY__SERVICE_NAME", "true"),
                ("SCAFFOLDER__LOG__LEVEL", "1e3"),
                // Number and boolean fields still parse.
                ("SCAFFOLDER__WORKER__CONCURRENCY", "4"),
                ("SCAFFOLDER__WORKER__MAX_ATTEMPTS", "3"),
                ("SCAFFOLDER__WORKER__ENABLED", "false"),
                ("SCAFFOLDER__AUTH__ALLOW_ANONYMOUS", "True"),
                ("SCAFFOLDER__SERVER__CORS__MAX_AGE_SECONDS", "600"),
                // Every list field takes comma-separated text.
                (
                    "SCAFFOLDER__TEMPLATES__URLS",
                    "https://github.com/o/r/blob/main/t/template.yaml",
                ),
                ("SCAFFOLDER__AUTH__ADMINS", "user:default/a,user:default/b"),
                ("SCAFFOLDER__AUTH__ANONYMOUS_HOSTS", "scaffolder, scaffolder.internal"),
                (
                    "SCAFFOLDER__SERVER__CORS__ORIGINS",
                    "http://localhost:3000,https://backstage.example",
                ),
                ("SCAFFOLDER__SERVER__CORS__METHODS", "GET,POST"),
            ]),
        )
        .unwrap();
        assert_eq!(s.telemetry.metrics_token.as_ref().map(Secret::expose), Some("12345678"));
        assert_eq!(s.catalog.token.as_ref().map(Secret::expose), Some("000123"));
        assert_eq!(s.telemetry.service_name, "true");
        assert_eq!(s.log.level, "1e3");
        assert_eq!((s.worker.concurrency, s.worker.max_attempts), (4, 3));
        assert!(!s.worker.enabled);
        assert_eq!(s.auth.allow_anonymous, Some(true));
        assert_eq!(s.templates.urls.len(), 1);
        assert_eq!(s.auth.admins, ["user:default/a", "user:default/b"]);
        assert_eq!(s.auth.anonymous_hosts, ["scaffolder", "scaffolder.internal"]);
        let cors = s.server.cors.expect("cors from the environment");
        assert_eq!(cors.origins, ["http://localhost:3000", "https://backstage.example"]);
        assert_eq!(cors.methods, ["GET", "POST"]);
        assert_eq!(cors.max_age_seconds, Some(600));
        assert!(
            cors.credentials,
            "defaults fill the rest of a section set from the environment"
        );

        // A YAML number given to a string field is its text.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, "telemetry:\n  metrics_token: 87654321\n").unwrap();
        let s = Settings::load_from(Some(&file), &[]).unwrap();
        assert_eq!(s.telemetry.metrics_token.as_ref().map(Secret::expose), Some("87654321"));

        for (key, value, needle) in [
            ("SCAFFOLDER__WORKER__CONCURRENCY", "four", "worker.concurrency"),
            ("SCAFFOLDER__WORKER__ENABLED", "maybe", "worker.enabled"),
            (
                "SCAFFOLDER__SERVER__CORS__MAX_AGE_SECONDS",
                "-1",
                "server.cors.max_age_seconds",
            ),
        ] {
            let err = Settings::load_from(None, &env(&[(key, value)])).unwrap_err();
            assert!(
                err.to_string().contains(needle) && err.to_string().contains(value),
                "{key}: {err}"
            );
        }
    }

    #[test]
    fn printing_the_settings_shows_no_token_key_or_password() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(
            &file,
            "auth:\n  tokens:\n    - token: static-token-one\n      subject: service:ci\nintegrations:\n  github:\n    - host: ghe.example.com\n      token: ghp_github_token\n",
        )
        .unwrap();
        let s = Settings::load_from(
            Some(&file),
            &env(&[
                ("DATABASE_URL", "postgres://app:db-password-1@db:5432/scaffolder"),
                ("SCAFFOLDER__TELEMETRY__METRICS_TOKEN", "12345678"),
                ("SCAFFOLDER__CATALOG__TOKEN", "catalog-token"),
                ("SCAFFOLDER__SECRETS__KEYS", "k1:c2VjcmV0LWtleS1ieXRlcw=="),
            ]),
        )
        .unwrap();
        let printed = format!("{s:?} {s:#?}");
        for secret in [
            "db-password-1",
            "12345678",
            "catalog-token",
            "c2VjcmV0LWtleS1ieXRlcw",
            "static-token-one",
            "ghp_github_token",
        ] {
            assert!(!printed.contains(secret), "{secret} printed in {printed}");
        }
        assert!(printed.contains("postgres://app:***@db:5432/scaffolder"), "{printed}");
        assert!(printed.contains("k1"), "key ids still print: {printed}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, "server:\n  bnd: x\n").unwrap();
        let err = Settings::load_from(Some(&file), &[]).unwrap_err();
        assert!(err.to_string().contains("bnd"), "{err}");
        let err = Settings::load_from(None, &env(&[("SCAFFOLDER__WORKER__CONCURRENCY", "0")])).unwrap_err();
        assert!(err.to_string().contains("concurrency"), "{err}");
    }

    #[test]
    fn auth_and_cors_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(
            &file,
            "auth:\n  backstage:\n    base_url: http://backstage:7007\n  tokens:\n    - token: abcdefgh12\n      subject: service:ci\n      access: all\n  admins: [user:default/admin]\nserver:\n  cors:\n    origins: [http://localhost:3000]\n",
        )
        .unwrap();
        let s = Settings::load_from(Some(&file), &env(&[("SCAFFOLDER__AUTH__ALLOW_ANONYMOUS", "true")])).unwrap();
        assert_eq!(s.auth.allow_anonymous, Some(true));
        assert_eq!(s.auth.tokens[0].access, TokenAccess::All);
        assert_eq!(s.auth.admins, vec!["user:default/admin".to_owned()]);
        assert_eq!(s.auth.backstage.as_ref().map(|b| b.jwks_min_refresh_seconds), Some(30));
        let cors = s.server.cors.unwrap();
        assert!(cors.credentials);
        assert_eq!(cors.origins, vec!["http://localhost:3000".to_owned()]);
        for (yaml, needle) in [
            (
                "auth:\n  tokens:\n    - token: short\n      subject: s\n",
                "8 characters",
            ),
            ("auth:\n  tokens:\n    - subject: s\n", "exactly one"),
            ("auth:\n  backstage:\n    base_url: nope\n", "auth.backstage.base_url"),
            (
                "server:\n  cors:\n    origins: [not an origin]\n",
                "server.cors.origins",
            ),
        ] {
            std::fs::write(&file, yaml).unwrap();
            let err = Settings::load_from(Some(&file), &[]).unwrap_err();
            assert!(err.to_string().contains(needle), "{yaml}: {err}");
        }
    }

    #[test]
    fn telemetry_is_read_from_the_environment_and_checked() {
        let s = Settings::load_from(None, &[]).unwrap();
        assert!(s.telemetry.otlp_endpoint.is_none());
        assert!(s.telemetry.metrics_token.is_none());
        assert_eq!(s.telemetry.service_name, "scaffolder");
        let s = Settings::load_from(
            None,
            &env(&[
                ("SCAFFOLDER__TELEMETRY__OTLP_ENDPOINT", "http://collector:4318"),
                ("SCAFFOLDER__TELEMETRY__METRICS_TOKEN", "scrape-me-please"),
                ("SCAFFOLDER__TELEMETRY__SERVICE_NAME", "scaffolder-eu"),
            ]),
        )
        .unwrap();
        assert_eq!(s.telemetry.otlp_endpoint.as_deref(), Some("http://collector:4318"));
        assert_eq!(
            s.telemetry.metrics_token.as_ref().map(Secret::expose),
            Some("scrape-me-please")
        );
        assert_eq!(s.telemetry.service_name, "scaffolder-eu");
        for (key, value, needle) in [
            (
                "SCAFFOLDER__TELEMETRY__OTLP_ENDPOINT",
                "collector:4318",
                "telemetry.otlp_endpoint",
            ),
            (
                "SCAFFOLDER__TELEMETRY__METRICS_TOKEN",
                "short",
                "telemetry.metrics_token",
            ),
            ("SCAFFOLDER__TELEMETRY__OTLP_HEADERS", "x", "otlp_headers"),
        ] {
            let err = Settings::load_from(None, &env(&[(key, value)])).unwrap_err();
            assert!(err.to_string().contains(needle), "{key}: {err}");
        }
    }

    #[test]
    fn integrations_default_to_the_local_git_host_and_no_catalog() {
        let s = Settings::load_from(None, &[]).unwrap();
        assert!(s.integrations.github.is_empty());
        assert!(s.integrations.local_git.enabled);
        assert_eq!(s.integrations.local_git.host, "git.local");
        assert!(s.catalog.base_url.is_none());
        let dir = LocalGitSettings {
            dir: Some(PathBuf::from("/srv/git")),
            ..LocalGitSettings::default()
        };
        assert_eq!(dir.data_dir(), PathBuf::from("/srv/git"));
    }

    #[test]
    fn integrations_and_catalog_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(
            &file,
            "integrations:\n  github:\n    - host: ghe.example.com\n      api_base_url: https://ghe.example.com/api/v3\n      token: t\n    - host: github.com\n      app: {app_id: 1, private_key_file: /k.pem, installation_id: 2}\n  local_git:\n    dir: /srv/git\ncatalog:\n  base_url: http://backstage:7007/api/catalog\n",
        )
        .unwrap();
        let s = Settings::load_from(Some(&file), &env(&[("SCAFFOLDER__CATALOG__TOKEN", "secret")])).unwrap();
        assert_eq!(s.integrations.github.len(), 2);
        assert_eq!(s.integrations.github[0].token.as_ref().map(Secret::expose), Some("t"));
        assert_eq!(
            s.integrations.github[1].app.as_ref().map(|a| a.installation_id),
            Some(2)
        );
        assert_eq!(s.integrations.local_git.data_dir(), PathBuf::from("/srv/git"));
        assert_eq!(s.catalog.token.as_ref().map(Secret::expose), Some("secret"));

        for (yaml, needle) in [
            ("integrations:\n  github:\n    - host: a/b\n", "host"),
            (
                "integrations:\n  github:\n    - host: x\n      api_base_url: ftp://x\n",
                "api_base_url",
            ),
            ("integrations:\n  github:\n    - host: git.local\n", "more than once"),
            ("catalog:\n  base_url: not a url\n", "catalog.base_url"),
            ("integrations:\n  gitlab: []\n", "gitlab"),
        ] {
            std::fs::write(&file, yaml).unwrap();
            let err = Settings::load_from(Some(&file), &[]).unwrap_err();
            assert!(err.to_string().contains(needle), "{yaml}: {err}");
        }
    }
}
