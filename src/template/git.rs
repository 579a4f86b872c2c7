//! Templates at git URLs (`templates.urls`): GitHub
//! `https://<host>/<owner>/<repo>/blob/<ref>/<path>/template.yaml` read
//! through the GitHub integration, and the same URL shape on the local git
//! host. Read once at start; the template's `baseUrl` is its URL, so relative
//! `fetch:*` URLs resolve to the same repository and commit.

use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::source::{TemplateSource, TemplateSourceError};
use super::{EntityRef, LoadedTemplate, API_VERSION};
use crate::scm::reader::UrlReader;

#[derive(Debug, Default)]
pub struct GitTemplateSource {
    by_ref: HashMap<String, LoadedTemplate>,
    /// URLs that could not be loaded, with the reason (reported at start).
    pub problems: Vec<(String, String)>,
}

impl GitTemplateSource {
    pub async fn load(urls: &[String], reader: &UrlReader) -> GitTemplateSource {
        let mut source = GitTemplateSource::default();
        let cancel = CancellationToken::new();
        for raw in urls {
            match load_url(raw, reader, &cancel).await {
                Ok(templates) => {
                    for template in templates {
                        source.by_ref.entry(template.entity_ref.key()).or_insert(template);
                    }
                }
                Err(problem) => source.problems.push((raw.clone(), problem)),
            }
        }
        source
    }

    pub fn templates(&self) -> impl Iterator<Item = &LoadedTemplate> {
        self.by_ref.values()
    }
}

async fn load_url(raw: &str, reader: &UrlReader, cancel: &CancellationToken) -> Result<Vec<LoadedTemplate>, String> {
    let url = Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    let (text, commit) = reader.read_file(&url, None, cancel).await.map_err(|e| e.to_string())?;
    let mut templates = Vec::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(document).map_err(|e| format!("invalid YAML: {e}"))?;
        let is_template = value.get("kind").and_then(Value::as_str) == Some("Template")
            && value.get("apiVersion").and_then(Value::as_str) == Some(API_VERSION);
        if is_template {
            templates.push(LoadedTemplate::from_entity(value, url.clone(), None).map_err(|e| e.to_string())?);
        }
    }
    if templates.is_empty() {
        return Err(format!("no {API_VERSION} Template at {url}"));
    }
    tracing::info!(url = %url, commit = %commit, count = templates.len(), "templates read from git");
    Ok(templates)
}

#[async_trait]
impl TemplateSource for GitTemplateSource {
    async fn find(&self, entity_ref: &EntityRef) -> Result<Option<LoadedTemplate>, TemplateSourceError> {
        Ok(self.by_ref.get(&entity_ref.key()).cloned())
    }
}
