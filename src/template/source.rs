use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use url::Url;

use super::{EntityRef, LoadedTemplate, TemplateError, API_VERSION};

/// Why a template file yields no template.
#[derive(Debug, thiserror::Error)]
pub enum TemplateFileError {
    #[error("cannot read: {0}")]
    Read(std::io::Error),
    #[error("cannot resolve path: {0}")]
    Resolve(std::io::Error),
    #[error("invalid YAML: {0}")]
    Yaml(serde_norway::Error),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("no {API_VERSION} Template in this file")]
    NoTemplate,
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateSourceError {
    #[error("template source unavailable: {0}")]
    Unavailable(String),
}

/// Somewhere templates come from: a directory today; the Backstage catalog and
/// git URLs plug in here as further sources.
#[async_trait]
pub trait TemplateSource: Send + Sync {
    async fn find(&self, entity_ref: &EntityRef) -> Result<Option<LoadedTemplate>, TemplateSourceError>;

    /// As [`TemplateSource::find`], on behalf of a caller with this Backstage
    /// token (sources that ask the catalog forward it).
    async fn find_as(
        &self,
        entity_ref: &EntityRef,
        _token: Option<&str>,
    ) -> Result<Option<LoadedTemplate>, TemplateSourceError> {
        self.find(entity_ref).await
    }
}

/// Templates read once at start from directories (`<dir>/*/template.yaml`).
#[derive(Debug, Default)]
pub struct DirTemplateSource {
    by_ref: HashMap<String, LoadedTemplate>,
    /// Files that could not be loaded, with the reason (reported at start).
    pub problems: Vec<(PathBuf, String)>,
}

impl DirTemplateSource {
    pub fn load(dirs: &[PathBuf]) -> DirTemplateSource {
        let mut source = DirTemplateSource::default();
        for dir in dirs {
            let mut files = Vec::new();
            let direct = dir.join("template.yaml");
            if direct.is_file() {
                files.push(direct);
            }
            match std::fs::read_dir(dir) {
                Ok(entries) => {
                    let mut found: Vec<PathBuf> = entries
                        .filter_map(Result::ok)
                        .map(|e| e.path().join("template.yaml"))
                        .filter(|p| p.is_file())
                        .collect();
                    found.sort();
                    files.extend(found);
                }
                Err(e) => source
                    .problems
                    .push((dir.clone(), format!("cannot read template directory: {e}"))),
            }
            for file in files {
                source.load_file(&file);
            }
        }
        source
    }

    fn load_file(&mut self, file: &Path) {
        match load_template_file(file) {
            Ok(templates) => {
                for template in templates {
                    let key = template.entity_ref.key();
                    if let Some(previous) = self.by_ref.get(&key) {
                        self.problems.push((
                            file.to_owned(),
                            format!(
                                "{} is already defined by {}; this copy is ignored",
                                template.entity_ref, previous.base_url
                            ),
                        ));
                        continue;
                    }
                    self.by_ref.insert(key, template);
                }
            }
            Err(problem) => self.problems.push((file.to_owned(), problem.to_string())),
        }
    }

    pub fn templates(&self) -> impl Iterator<Item = &LoadedTemplate> {
        self.by_ref.values()
    }
}

/// Every `kind: Template` v1beta3 document of a YAML file.
pub fn load_template_file(file: &Path) -> Result<Vec<LoadedTemplate>, TemplateFileError> {
    let text = std::fs::read_to_string(file).map_err(TemplateFileError::Read)?;
    let canonical = file.canonicalize().map_err(TemplateFileError::Resolve)?;
    // A canonical path is absolute, so it always makes a file URL.
    let base_url = Url::from_file_path(&canonical).map_err(|()| {
        TemplateFileError::Resolve(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "path is not absolute",
        ))
    })?;
    let dir = canonical.parent().map(Path::to_path_buf);
    let mut templates = Vec::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(document).map_err(TemplateFileError::Yaml)?;
        let is_template = value.get("kind").and_then(Value::as_str) == Some("Template")
            && value.get("apiVersion").and_then(Value::as_str) == Some(API_VERSION);
        if !is_template {
            continue;
        }
        let template = LoadedTemplate::from_entity(value, base_url.clone(), dir.clone())?;
        templates.push(template);
    }
    if templates.is_empty() {
        return Err(TemplateFileError::NoTemplate);
    }
    Ok(templates)
}

#[async_trait]
impl TemplateSource for DirTemplateSource {
    async fn find(&self, entity_ref: &EntityRef) -> Result<Option<LoadedTemplate>, TemplateSourceError> {
        Ok(self.by_ref.get(&entity_ref.key()).cloned())
    }
}

/// Templates built into the binary (the promotion template).
pub struct StaticTemplateSource {
    by_ref: HashMap<String, LoadedTemplate>,
}

impl StaticTemplateSource {
    /// The templates of `text`, a YAML file named `name` for messages.
    pub fn from_yaml(name: &str, text: &str) -> Result<StaticTemplateSource, TemplateFileError> {
        let base_url = Url::parse(&format!("https://scaffolder.invalid/builtin/{name}"))
            .map_err(|e| TemplateFileError::Resolve(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
        let mut by_ref = HashMap::new();
        for document in serde_norway::Deserializer::from_str(text) {
            let value: Value = serde::Deserialize::deserialize(document).map_err(TemplateFileError::Yaml)?;
            let template = LoadedTemplate::from_entity(value, base_url.clone(), None)?;
            by_ref.insert(template.entity_ref.key(), template);
        }
        if by_ref.is_empty() {
            return Err(TemplateFileError::NoTemplate);
        }
        Ok(StaticTemplateSource { by_ref })
    }
}

#[async_trait]
impl TemplateSource for StaticTemplateSource {
    async fn find(&self, entity_ref: &EntityRef) -> Result<Option<LoadedTemplate>, TemplateSourceError> {
        Ok(self.by_ref.get(&entity_ref.key()).cloned())
    }
}

/// All configured sources, asked in order.
#[derive(Clone, Default)]
pub struct Templates {
    sources: Vec<Arc<dyn TemplateSource>>,
}

impl Templates {
    pub fn new(sources: Vec<Arc<dyn TemplateSource>>) -> Templates {
        Templates { sources }
    }

    pub async fn find(&self, entity_ref: &EntityRef) -> Result<Option<LoadedTemplate>, TemplateSourceError> {
        self.find_as(entity_ref, None).await
    }

    /// The first source that knows `entity_ref`, asked with the caller's token.
    pub async fn find_as(
        &self,
        entity_ref: &EntityRef,
        token: Option<&str>,
    ) -> Result<Option<LoadedTemplate>, TemplateSourceError> {
        for source in &self.sources {
            if let Some(found) = source.find_as(entity_ref, token).await? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_files_are_reported_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        let bad = dir.path().join("bad");
        std::fs::create_dir_all(&good).unwrap();
        std::fs::create_dir_all(&bad).unwrap();
        std::fs::write(
            good.join("template.yaml"),
            "apiVersion: scaffolder.backstage.io/v1beta3\nkind: Template\nmetadata:\n  name: good\nspec:\n  steps: []\n",
        )
        .unwrap();
        std::fs::write(bad.join("template.yaml"), "apiVersion: [unclosed\n").unwrap();
        let source = DirTemplateSource::load(&[dir.path().to_path_buf()]);
        assert_eq!(source.templates().count(), 1);
        assert_eq!(source.problems.len(), 1);
        assert!(source.problems[0].0.ends_with("bad/template.yaml"));
    }
}
