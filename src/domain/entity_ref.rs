//! Catalog entity references (`kind:namespace/name`), parsed by the rules of
//! Backstage's catalog-model: the one parser of the code base (templates,
//! `parseEntityRef` in templates, `catalog:*`, the command line).

use std::fmt;

/// A catalog entity reference `kind:namespace/name`; kind and namespace may be
/// omitted (`ref-demo`, `default/ref-demo`) and default to `template`/`default`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntityRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntityRefError {
    #[error("Entity reference \"{0}\" was not on the form [<kind>:][<namespace>/]<name>")]
    Malformed(String),
}

/// The parts of a reference string, by catalog-model's `parseEntityRef`
/// rules: the first `/` ends the namespace, a `:` before it ends the kind
/// (a `:` after the first `/` belongs to the name), the rest is the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefParts<'a> {
    pub kind: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
}

/// Splits `raw` as catalog-model does; an empty kind, namespace or name is
/// an error.
pub fn parse_ref_string(raw: &str) -> Result<RefParts<'_>, EntityRefError> {
    let slash = raw.find('/');
    let colon = raw.find(':').filter(|c| slash.map_or(true, |s| *c < s));
    let kind = colon.map(|c| &raw[..c]);
    let after_kind = colon.map_or(0, |c| c + 1);
    let namespace = slash.map(|s| &raw[after_kind..s]);
    let name = &raw[slash.map_or(after_kind, |s| s + 1).max(after_kind)..];
    if kind == Some("") || namespace == Some("") || name.is_empty() {
        return Err(EntityRefError::Malformed(raw.to_owned()));
    }
    Ok(RefParts { kind, namespace, name })
}

impl EntityRef {
    /// A reference with the kind and namespace it omits taken from the defaults.
    pub fn parse(raw: &str, default_kind: &str, default_namespace: &str) -> Result<EntityRef, EntityRefError> {
        let parts = parse_ref_string(raw)?;
        Ok(EntityRef {
            kind: parts.kind.unwrap_or(default_kind).to_owned(),
            namespace: parts.namespace.unwrap_or(default_namespace).to_owned(),
            name: parts.name.to_owned(),
        })
    }

    /// Entity references compare case-insensitively in Backstage.
    pub fn key(&self) -> String {
        format!("{}:{}/{}", self.kind, self.namespace, self.name).to_lowercase()
    }
}

impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.kind, self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_forms_take_defaults() {
        let full = EntityRef::parse("template:default/ref-demo", "template", "default").unwrap();
        assert_eq!(EntityRef::parse("ref-demo", "template", "default").unwrap(), full);
        assert_eq!(
            EntityRef::parse("default/ref-demo", "template", "default").unwrap(),
            full
        );
        let other = EntityRef::parse("Template:team/x", "template", "default").unwrap();
        assert_eq!(other.key(), "template:team/x");
    }

    #[test]
    fn malformed_refs_are_rejected() {
        for bad in ["", ":", "template:", "template:default/", "k:ns/", "/x", ":x"] {
            assert!(EntityRef::parse(bad, "template", "default").is_err(), "{bad:?}");
        }
    }

    /// catalog-model's own cases: a `:` after the first `/` is part of the name.
    #[test]
    fn catalog_model_rules_decide_where_the_parts_end() {
        let parts = |raw| parse_ref_string(raw).unwrap();
        assert_eq!(
            parts("a/b:c"),
            RefParts {
                kind: None,
                namespace: Some("a"),
                name: "b:c"
            }
        );
        assert_eq!(
            parts("k:a/b/c"),
            RefParts {
                kind: Some("k"),
                namespace: Some("a"),
                name: "b/c"
            }
        );
        assert_eq!(
            parts("k:n:x"),
            RefParts {
                kind: Some("k"),
                namespace: None,
                name: "n:x"
            }
        );
        assert_eq!(
            EntityRef::parse("a/b:c", "template", "default").unwrap().to_string(),
            "template:a/b:c"
        );
    }
}
