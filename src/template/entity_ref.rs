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

impl EntityRef {
    pub fn parse(raw: &str, default_kind: &str, default_namespace: &str) -> Result<EntityRef, EntityRefError> {
        let malformed = || EntityRefError::Malformed(raw.to_owned());
        let (kind, rest) = match raw.split_once(':') {
            Some((kind, rest)) => (kind, rest),
            None => (default_kind, raw),
        };
        let (namespace, name) = match rest.split_once('/') {
            Some((ns, name)) => (ns, name),
            None => (default_namespace, rest),
        };
        if kind.is_empty() || namespace.is_empty() || name.is_empty() || name.contains(['/', ':']) {
            return Err(malformed());
        }
        Ok(EntityRef {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
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
        for bad in ["", ":", "template:", "template:default/", "a/b/c", "k:ns/"] {
            assert!(EntityRef::parse(bad, "template", "default").is_err(), "{bad:?}");
        }
    }
}
