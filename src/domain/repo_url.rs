//! Repository URLs as Backstage's repo picker writes them
//! (`github.com?owner=o&repo=r`) and scaffolder-node's `parseRepoUrl`, with the
//! SCM integrations that decide which parts a host needs. Shared by the
//! renderer's `parseRepoUrl` filter, the publish actions and `scm`.

/// The SCM integrations `parseRepoUrl` knows: host → integration type
/// (`github`, `gitlab`, `bitbucketCloud`, `bitbucket`, `azure`, `gitea`,
/// `gerrit`, …).
#[derive(Clone, Debug)]
pub struct Integrations {
    hosts: Vec<(String, String)>,
}

impl Default for Integrations {
    /// Backstage's implicit defaults (`ScmIntegrations.fromConfig` with an
    /// empty config).
    fn default() -> Self {
        Integrations {
            hosts: vec![
                ("github.com".to_string(), "github".to_string()),
                ("gitlab.com".to_string(), "gitlab".to_string()),
                ("bitbucket.org".to_string(), "bitbucketCloud".to_string()),
                ("dev.azure.com".to_string(), "azure".to_string()),
            ],
        }
    }
}

impl Integrations {
    /// No integrations at all.
    pub fn empty() -> Self {
        Integrations { hosts: Vec::new() }
    }

    /// Adds (or replaces) the integration type of `host` (with port, if any).
    pub fn with(mut self, host: impl Into<String>, kind: impl Into<String>) -> Self {
        let host = host.into();
        let kind = kind.into();
        match self.hosts.iter_mut().find(|(h, _)| *h == host) {
            Some(entry) => entry.1 = kind,
            None => self.hosts.push((host, kind)),
        }
        self
    }

    fn kind_of(&self, host: &str) -> Option<&str> {
        self.hosts.iter().find(|(h, _)| h == host).map(|(_, k)| k.as_str())
    }
}

/// The parts of a repo picker URL (`github.com?owner=o&repo=r`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RepoSpec {
    pub host: String,
    pub owner: Option<String>,
    pub repo: String,
    pub organization: Option<String>,
    pub workspace: Option<String>,
    pub project: Option<String>,
}

/// Why a repository URL was refused, in scaffolder-node's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoUrlError {
    #[error("Invalid repo URL passed to publisher, got {repo_url}, {reason}")]
    Invalid { repo_url: String, reason: String },
    #[error("No matching integration configuration for host {host}, please check your integrations config")]
    NoIntegration { host: String },
    #[error("Invalid repo URL passed to publisher: {url}, missing {part}")]
    Missing { url: String, part: String },
}

/// scaffolder-node's `parseRepoUrl`.
pub fn parse_repo_url(repo_url: &str, integrations: &Integrations) -> Result<RepoSpec, RepoUrlError> {
    let parsed = url::Url::parse(&format!("https://{repo_url}")).map_err(|e| RepoUrlError::Invalid {
        repo_url: repo_url.to_owned(),
        reason: e.to_string(),
    })?;
    let host = match (parsed.host_str(), parsed.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => String::new(),
    };
    let Some(kind) = integrations.kind_of(&host) else {
        return Err(RepoUrlError::NoIntegration { host });
    };
    let param = |name: &str| -> Option<String> {
        parsed
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim_matches('/').to_string())
    };
    let present = |name: &str| -> bool {
        parsed
            .query_pairs()
            .find(|(k, _)| k == name)
            .is_some_and(|(_, v)| !v.is_empty())
    };
    let require = |names: &[&str]| -> Result<(), RepoUrlError> {
        for name in names {
            if !present(name) {
                return Err(RepoUrlError::Missing {
                    url: parsed.to_string(),
                    part: (*name).to_owned(),
                });
            }
        }
        Ok(())
    };
    let project = param("project");
    match kind {
        "bitbucket" => {
            if host == "www.bitbucket.org" {
                require(&["workspace"])?;
            }
            require(&["project", "repo"])?;
        }
        "azure" => require(&["project", "repo"])?,
        "gitlab" => {
            if project.as_deref().unwrap_or_default().is_empty() {
                require(&["owner", "repo"])?;
            }
        }
        "gitea" | "gerrit" => require(&["repo"])?,
        _ => require(&["repo", "owner"])?,
    }
    Ok(RepoSpec {
        host,
        owner: param("owner"),
        repo: param("repo").unwrap_or_default(),
        organization: param("organization"),
        workspace: param("workspace"),
        project,
    })
}
