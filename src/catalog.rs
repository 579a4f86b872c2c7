//! A minimal client of Backstage's catalog REST API (the calls of
//! `@backstage/catalog-client` the catalog actions, catalog template sources
//! and task creation use).

use std::time::Duration;

use serde_json::{json, Value};

use crate::domain::entity_ref::EntityRef;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("invalid catalog URL {0}")]
    Url(String),
    #[error("cannot reach the catalog at {url}: {message}")]
    Transport { url: String, message: String },
    #[error("the catalog answered {status} to {request}: {message}")]
    Api {
        status: u16,
        request: String,
        message: String,
    },
}

impl CatalogError {
    pub fn status(&self) -> Option<u16> {
        match self {
            CatalogError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct CatalogClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl CatalogClient {
    /// `base_url` is the catalog plugin's base, e.g. `http://backstage:7007/api/catalog`.
    pub fn new(base_url: &str, token: Option<String>) -> Result<CatalogClient, CatalogError> {
        url::Url::parse(base_url).map_err(|_| CatalogError::Url(base_url.to_owned()))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| CatalogError::Transport {
                url: base_url.to_owned(),
                message: e.to_string(),
            })?;
        Ok(CatalogClient {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        user_token: Option<&str>,
    ) -> Result<Option<Value>, CatalogError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(token) = user_token.or(self.token.as_deref()) {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| CatalogError::Transport {
            url: url.clone(),
            message: e.to_string(),
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND && method == reqwest::Method::GET {
            return Ok(None);
        }
        let text = response.text().await.map_err(|e| CatalogError::Transport {
            url: url.clone(),
            message: e.to_string(),
        })?;
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            let message = parsed
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| text.chars().take(300).collect());
            return Err(CatalogError::Api {
                status: status.as_u16(),
                request: format!("{method} {path}"),
                message,
            });
        }
        Ok(Some(parsed))
    }

    /// `POST /locations` (`?dryRun=true` to only read the entities).
    pub async fn add_location(
        &self,
        target: &str,
        dry_run: bool,
        user_token: Option<&str>,
    ) -> Result<Value, CatalogError> {
        let path = if dry_run {
            "/locations?dryRun=true"
        } else {
            "/locations"
        };
        let body = json!({"type": "url", "target": target});
        Ok(self
            .send(reqwest::Method::POST, path, Some(&body), user_token)
            .await?
            .unwrap_or(Value::Null))
    }

    /// `GET /entities/by-name/{kind}/{namespace}/{name}`; `None` when absent.
    pub async fn entity(&self, entity: &EntityRef, user_token: Option<&str>) -> Result<Option<Value>, CatalogError> {
        let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
        let path = format!(
            "/entities/by-name/{}/{}/{}",
            enc(&entity.kind),
            enc(&entity.namespace),
            enc(&entity.name)
        );
        self.send(reqwest::Method::GET, &path, None, user_token).await
    }

    /// `POST /entities/by-refs`: one item per reference, `null` when absent.
    pub async fn entities(&self, refs: &[String], user_token: Option<&str>) -> Result<Vec<Value>, CatalogError> {
        let body = json!({"entityRefs": refs});
        let answer = self
            .send(reqwest::Method::POST, "/entities/by-refs", Some(&body), user_token)
            .await?
            .unwrap_or(Value::Null);
        Ok(answer
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_else(|| vec![Value::Null; refs.len()]))
    }
}

/// `kind:namespace/name` as catalog-model's `stringifyEntityRef` writes it.
pub fn stringify_entity(entity: &Value) -> Option<String> {
    let kind = entity.get("kind")?.as_str()?;
    let name = entity.pointer("/metadata/name")?.as_str()?;
    let namespace = entity
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    Some(format!("{}:{}/{name}", kind.to_lowercase(), namespace.to_lowercase()))
}
