//! The SCM integrations of this installation, built once from
//! `Settings.integrations`: GitHub hosts with their credentials, and the local
//! git host (bare repositories in a directory). `parseRepoUrl` in templates
//! and the publish actions resolve hosts through the same value.

use std::path::PathBuf;

use crate::config::{GithubIntegrationSettings, IntegrationSettings};
use crate::domain::repo_url::{parse_repo_url, Integrations, RepoSpec, RepoUrlError};

use super::github::RetryPolicy;

#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    #[error("cannot read the GitHub App private key {path} for host {host}: {source}")]
    KeyFile {
        host: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the GitHub App private key {path} for host {host} is not an RSA PEM key: {message}")]
    KeyFormat {
        host: String,
        path: PathBuf,
        message: String,
    },
}

/// How the scaffolder authenticates to a GitHub host.
#[derive(Clone)]
pub enum GithubCredentials {
    None,
    Token(String),
    /// Installation tokens are minted from the app's key for each action run.
    App {
        app_id: u64,
        key: jsonwebtoken::EncodingKey,
        installation_id: u64,
    },
}

impl std::fmt::Debug for GithubCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GithubCredentials::None => f.write_str("None"),
            GithubCredentials::Token(_) => f.write_str("Token(***)"),
            GithubCredentials::App {
                app_id,
                installation_id,
                ..
            } => write!(f, "App {{ app_id: {app_id}, installation_id: {installation_id} }}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GithubHost {
    pub host: String,
    pub api_base_url: String,
    pub credentials: GithubCredentials,
    pub retry: RetryPolicy,
}

/// Bare repositories at `<dir>/<owner>/<repo>.git`.
#[derive(Debug, Clone)]
pub struct LocalGitHost {
    pub host: String,
    pub dir: PathBuf,
}

/// Where a `repoUrl` host publishes to.
#[derive(Debug, Clone, Copy)]
pub enum ScmTarget<'a> {
    Github(&'a GithubHost),
    Local(&'a LocalGitHost),
}

#[derive(Debug, Clone)]
pub struct ScmIntegrations {
    github: Vec<GithubHost>,
    local: Option<LocalGitHost>,
}

impl Default for ScmIntegrations {
    /// The defaults: `github.com` without credentials and the local git host.
    fn default() -> Self {
        ScmIntegrations::from_settings(&IntegrationSettings::default())
            .unwrap_or_else(|_| ScmIntegrations::new(Vec::new(), None))
    }
}

impl ScmIntegrations {
    pub fn new(mut github: Vec<GithubHost>, local: Option<LocalGitHost>) -> ScmIntegrations {
        // Backstage always knows github.com, if only without credentials.
        if !github.iter().any(|g| g.host == "github.com") {
            github.push(GithubHost {
                host: "github.com".into(),
                api_base_url: "https://api.github.com".into(),
                credentials: GithubCredentials::None,
                retry: RetryPolicy::default(),
            });
        }
        ScmIntegrations { github, local }
    }

    /// Builds the integrations; reads and checks GitHub App keys, so a bad
    /// key is a start-up error rather than a failed task.
    pub fn from_settings(settings: &IntegrationSettings) -> Result<ScmIntegrations, IntegrationError> {
        let github = settings.github.iter().map(github_host).collect::<Result<Vec<_>, _>>()?;
        let local = settings.local_git.enabled.then(|| LocalGitHost {
            host: settings.local_git.host.clone(),
            dir: settings.local_git.data_dir(),
        });
        Ok(ScmIntegrations::new(github, local))
    }

    pub fn github_hosts(&self) -> &[GithubHost] {
        &self.github
    }

    pub fn local(&self) -> Option<&LocalGitHost> {
        self.local.as_ref()
    }

    pub fn target(&self, host: &str) -> Option<ScmTarget<'_>> {
        if let Some(local) = self.local.as_ref().filter(|l| l.host == host) {
            return Some(ScmTarget::Local(local));
        }
        self.github.iter().find(|g| g.host == host).map(ScmTarget::Github)
    }

    /// What `parseRepoUrl` knows: Backstage's defaults plus these hosts (the
    /// local host parses like GitHub: `owner` and `repo` are required).
    pub fn templating(&self) -> Integrations {
        let mut integrations = Integrations::default();
        for github in &self.github {
            integrations = integrations.with(github.host.clone(), "github");
        }
        if let Some(local) = &self.local {
            integrations = integrations.with(local.host.clone(), "git");
        }
        integrations
    }

    pub fn parse_repo_url(&self, repo_url: &str) -> Result<RepoSpec, RepoUrlError> {
        parse_repo_url(repo_url, &self.templating())
    }
}

fn github_host(settings: &GithubIntegrationSettings) -> Result<GithubHost, IntegrationError> {
    let host = settings.host.trim().to_owned();
    let api_base_url = settings.api_base_url.clone().unwrap_or_else(|| {
        if host == "github.com" {
            "https://api.github.com".into()
        } else {
            format!("https://{host}/api/v3")
        }
    });
    let credentials = match (&settings.app, &settings.token) {
        (Some(app), _) => {
            let pem = std::fs::read(&app.private_key_file).map_err(|source| IntegrationError::KeyFile {
                host: host.clone(),
                path: app.private_key_file.clone(),
                source,
            })?;
            let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).map_err(|e| IntegrationError::KeyFormat {
                host: host.clone(),
                path: app.private_key_file.clone(),
                message: e.to_string(),
            })?;
            GithubCredentials::App {
                app_id: app.app_id,
                key,
                installation_id: app.installation_id,
            }
        }
        (None, Some(token)) => GithubCredentials::Token(token.expose().to_owned()),
        (None, None) => GithubCredentials::None,
    };
    Ok(GithubHost {
        host,
        api_base_url: api_base_url.trim_end_matches('/').to_owned(),
        credentials,
        retry: RetryPolicy::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GithubAppSettings, LocalGitSettings};

    #[test]
    fn defaults_know_github_com_and_the_local_host() {
        let scm = ScmIntegrations::default();
        assert!(matches!(scm.target("github.com"), Some(ScmTarget::Github(_))));
        assert!(matches!(scm.target("git.local"), Some(ScmTarget::Local(_))));
        assert!(scm.target("example.com").is_none());
        let spec = scm.parse_repo_url("git.local?owner=acme&repo=svc").unwrap();
        assert_eq!((spec.owner.as_deref(), spec.repo.as_str()), (Some("acme"), "svc"));
        assert!(scm.parse_repo_url("git.local?repo=svc").is_err());
        // Backstage's implicit hosts stay known to parseRepoUrl.
        assert!(scm.parse_repo_url("gitlab.com?owner=a&repo=b").is_ok());
    }

    #[test]
    fn configured_hosts_take_their_api_base_and_credentials() {
        let settings = IntegrationSettings {
            github: vec![GithubIntegrationSettings {
                host: "ghe.example.com".into(),
                api_base_url: None,
                token: Some("t".into()),
                app: None,
            }],
            local_git: LocalGitSettings {
                enabled: false,
                ..LocalGitSettings::default()
            },
        };
        let scm = ScmIntegrations::from_settings(&settings).unwrap();
        let Some(ScmTarget::Github(ghe)) = scm.target("ghe.example.com") else {
            panic!("ghe is a GitHub host")
        };
        assert_eq!(ghe.api_base_url, "https://ghe.example.com/api/v3");
        assert!(matches!(&ghe.credentials, GithubCredentials::Token(t) if t == "t"));
        assert_eq!(format!("{:?}", ghe.credentials), "Token(***)");
        assert!(scm.target("git.local").is_none());
        assert!(scm.parse_repo_url("ghe.example.com?owner=a&repo=b").is_ok());
    }

    #[test]
    fn a_missing_or_bad_app_key_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = IntegrationSettings::default();
        settings.github.push(GithubIntegrationSettings {
            host: "github.com".into(),
            api_base_url: None,
            token: None,
            app: Some(GithubAppSettings {
                app_id: 1,
                private_key_file: dir.path().join("missing.pem"),
                installation_id: 2,
            }),
        });
        let err = ScmIntegrations::from_settings(&settings).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
        std::fs::write(dir.path().join("missing.pem"), "not a key").unwrap();
        let err = ScmIntegrations::from_settings(&settings).unwrap_err();
        assert!(err.to_string().contains("not an RSA PEM key"), "{err}");
    }
}
