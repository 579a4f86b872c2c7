//! Templates from the Backstage catalog: `GET <catalog>/entities/by-name/
//! template/<ns>/<name>` with the caller's token. The entity's
//! `backstage.io/source-location` (else `backstage.io/managed-by-location`)
//! annotation is the base URL relative `fetch:*` URLs resolve against, as in
//! Backstage's scaffolder.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use url::Url;

use super::source::{TemplateSource, TemplateSourceError};
use super::{EntityRef, LoadedTemplate, API_VERSION};
use crate::catalog::CatalogClient;

pub const SOURCE_LOCATION: &str = "backstage.io/source-location";
pub const MANAGED_BY_LOCATION: &str = "backstage.io/managed-by-location";

pub struct CatalogTemplateSource {
    client: Arc<CatalogClient>,
}

impl CatalogTemplateSource {
    pub fn new(client: Arc<CatalogClient>) -> CatalogTemplateSource {
        CatalogTemplateSource { client }
    }
}

/// The base URL of an entity from its location annotations (`url:<target>`
/// or `file:<path>`), as Backstage's `getEntityBaseUrl`.
pub fn entity_base_url(entity: &Value) -> Option<Url> {
    let annotations = entity.pointer("/metadata/annotations")?;
    let location = annotations
        .get(SOURCE_LOCATION)
        .or_else(|| annotations.get(MANAGED_BY_LOCATION))?
        .as_str()?;
    let (kind, target) = location.split_once(':')?;
    match kind {
        "url" => Url::parse(target).ok(),
        "file" => Url::from_file_path(target).ok(),
        _ => None,
    }
}

#[async_trait]
impl TemplateSource for CatalogTemplateSource {
    async fn find(&self, entity_ref: &EntityRef) -> Result<Option<LoadedTemplate>, TemplateSourceError> {
        self.find_as(entity_ref, None).await
    }

    async fn find_as(
        &self,
        entity_ref: &EntityRef,
        token: Option<&str>,
    ) -> Result<Option<LoadedTemplate>, TemplateSourceError> {
        let wanted = EntityRef {
            kind: "template".into(),
            namespace: entity_ref.namespace.clone(),
            name: entity_ref.name.clone(),
        };
        let entity = match self.client.entity(&wanted, token).await {
            Ok(Some(entity)) => entity,
            Ok(None) => return Ok(None),
            Err(e) if matches!(e.status(), Some(401 | 403)) => {
                tracing::warn!(template = %wanted, error = %e, "the catalog refused the template lookup");
                return Ok(None);
            }
            Err(e) => return Err(TemplateSourceError::Unavailable(e.to_string())),
        };
        if entity.get("apiVersion").and_then(Value::as_str) != Some(API_VERSION) {
            tracing::warn!(template = %wanted, "the catalog entity is not a {API_VERSION} Template");
            return Ok(None);
        }
        let base_url = match entity_base_url(&entity) {
            Some(url) => url,
            None => {
                // Without a location, relative fetches cannot resolve; point
                // at the entity itself so that the error names it.
                let fallback = format!(
                    "{}/entities/by-name/template/{}/{}",
                    self.client.base_url(),
                    wanted.namespace,
                    wanted.name
                );
                Url::parse(&fallback).map_err(|e| TemplateSourceError::Unavailable(e.to_string()))?
            }
        };
        let dir = (base_url.scheme() == "file")
            .then(|| base_url.to_file_path().ok())
            .flatten()
            .and_then(|p| p.parent().map(std::path::Path::to_path_buf));
        LoadedTemplate::from_entity(entity, base_url, dir)
            .map(Some)
            .map_err(|e| TemplateSourceError::Unavailable(format!("catalog template {wanted} is invalid: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn base_urls_come_from_the_location_annotations() {
        let e = json!({"metadata": {"annotations": {
            "backstage.io/managed-by-location": "url:https://github.com/o/r/blob/main/t/template.yaml",
            "backstage.io/source-location": "url:https://github.com/o/r/tree/main/t/",
        }}});
        assert_eq!(
            entity_base_url(&e).unwrap().as_str(),
            "https://github.com/o/r/tree/main/t/"
        );
        let e = json!({"metadata": {"annotations": {
            "backstage.io/managed-by-location": "file:/srv/t/template.yaml",
        }}});
        assert_eq!(entity_base_url(&e).unwrap().as_str(), "file:///srv/t/template.yaml");
        assert!(entity_base_url(&json!({"metadata": {}})).is_none());
    }
}
