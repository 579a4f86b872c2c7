//! Argo CD's application API, as much as a promotion needs: whether an
//! application is Synced and Healthy (`GET /api/v1/applications/{name}`).

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ArgoError {
    #[error("Argo CD at {url} cannot be reached: {message}")]
    Unreachable { url: String, message: String },
    #[error("Argo CD answered {status} for the application {name}")]
    Status { name: String, status: u16 },
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Application {
    #[serde(default)]
    pub status: AppStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AppStatus {
    #[serde(default)]
    pub sync: SyncStatus,
    #[serde(default)]
    pub health: HealthStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SyncStatus {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub revision: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct HealthStatus {
    #[serde(default)]
    pub status: String,
}

impl Application {
    pub fn ready(&self) -> bool {
        self.status.sync.status == "Synced" && self.status.health.status == "Healthy"
    }

    /// `Synced/Healthy`, as Argo CD's UI shows it.
    pub fn summary(&self) -> String {
        let or_unknown = |s: &str| {
            if s.is_empty() {
                "Unknown".to_owned()
            } else {
                s.to_owned()
            }
        };
        format!(
            "{}/{}",
            or_unknown(&self.status.sync.status),
            or_unknown(&self.status.health.status)
        )
    }
}

pub struct ArgoClient {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl ArgoClient {
    pub fn new(url: &str, token: Option<String>) -> Result<ArgoClient, ArgoError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ArgoError::Unreachable {
                url: url.to_owned(),
                message: e.to_string(),
            })?;
        Ok(ArgoClient {
            http,
            url: url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    pub async fn application(&self, name: &str) -> Result<Application, ArgoError> {
        let mut request = self.http.get(format!(
            "{}/api/v1/applications/{}",
            self.url,
            percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
        ));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let unreachable = |e: reqwest::Error| ArgoError::Unreachable {
            url: self.url.clone(),
            message: e.to_string(),
        };
        let response = request.send().await.map_err(unreachable)?;
        if !response.status().is_success() {
            return Err(ArgoError::Status {
                name: name.to_owned(),
                status: response.status().as_u16(),
            });
        }
        response.json().await.map_err(unreachable)
    }
}
