//! Backstage's default template filters: `parseRepoUrl`, `parseEntityRef`,
//! `pick`, `projectSlug` (scaffolder-backend `lib/templating/filters`,
//! scaffolder-node `parseRepoUrl`, catalog-model `parseEntityRef`, lodash
//! `get`).

use std::sync::Arc;

use minijinja::value::{Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};

use super::js;
use super::values::{get_opt, to_js_string};
use crate::domain::entity_ref::parse_ref_string;
pub use crate::domain::repo_url::{parse_repo_url, Integrations, RepoSpec};

fn input_error(msg: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

fn repo_spec_value(spec: RepoSpec) -> Value {
    let mut pairs = vec![("host", Value::from(spec.host))];
    if let Some(owner) = spec.owner {
        pairs.push(("owner", Value::from(owner)));
    }
    pairs.push(("repo", Value::from(spec.repo)));
    for (k, v) in [
        ("organization", spec.organization),
        ("workspace", spec.workspace),
        ("project", spec.project),
    ] {
        if let Some(v) = v {
            pairs.push((k, Value::from(v)));
        }
    }
    js::object(pairs)
}

fn string_or_none(v: &Value) -> Option<Value> {
    if v.is_undefined() || v.is_none() {
        None
    } else {
        Some(v.clone())
    }
}

/// catalog-model's `parseEntityRef`.
fn parse_entity_ref(reference: &Value, context: &Value) -> Result<Value, Error> {
    let falsy = match reference.kind() {
        ValueKind::Undefined | ValueKind::None => true,
        ValueKind::String => reference.as_str().unwrap_or_default().is_empty(),
        ValueKind::Bool => !reference.is_true(),
        _ => false,
    };
    if falsy {
        return Err(input_error("Entity reference must not be empty".to_string()));
    }
    let ctx_get = |k: &str| -> Option<Value> {
        if context.kind() == ValueKind::Map {
            get_opt(context, &Value::from(k)).and_then(|v| string_or_none(&v))
        } else {
            None
        }
    };
    let default_kind = ctx_get("defaultKind");
    // `context?.defaultNamespace || DEFAULT_NAMESPACE`
    let default_namespace = ctx_get("defaultNamespace")
        .filter(super::values::is_truthy)
        .unwrap_or_else(|| Value::from("default"));
    let textual = || super::values::json_stringify(reference, "").unwrap_or_default();

    let (kind, namespace, name) = if let Some(r) = reference.as_str() {
        let parts = parse_ref_string(r).map_err(|e| input_error(e.to_string()))?;
        (
            parts.kind.map(Value::from).or(default_kind),
            parts.namespace.map(Value::from).unwrap_or(default_namespace),
            Value::from(parts.name),
        )
    } else {
        let get = |k: &str| get_opt(reference, &Value::from(k)).and_then(|v| string_or_none(&v));
        (
            get("kind").or(default_kind),
            get("namespace").unwrap_or(default_namespace),
            get("name").unwrap_or(Value::UNDEFINED),
        )
    };
    let truthy = |v: &Value| super::values::is_truthy(v);
    match kind {
        Some(k) if truthy(&k) => {
            if !truthy(&namespace) {
                return Err(input_error(format!(
                    "Entity reference {} had missing or empty namespace",
                    textual()
                )));
            }
            if !truthy(&name) {
                return Err(input_error(format!(
                    "Entity reference {} had missing or empty name",
                    textual()
                )));
            }
            Ok(js::object(vec![("kind", k), ("namespace", namespace), ("name", name)]))
        }
        _ => Err(input_error(format!(
            "Entity reference {} had missing or empty kind (e.g. did not start with \"component:\" or similar)",
            textual()
        ))),
    }
}

/// lodash `_.get(object, path)` with a string path (`a.b[0].c`).
fn pick(obj: &Value, path: &Value) -> Value {
    if obj.is_undefined() || obj.is_none() {
        return Value::UNDEFINED;
    }
    let path_text = to_js_string(path);
    // lodash first tries the whole path as a key.
    if obj.kind() == ValueKind::Map {
        if let Some(v) = get_opt(obj, &Value::from(path_text.as_str())) {
            return v;
        }
    }
    let mut keys: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut chars = path_text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => keys.push(std::mem::take(&mut current)),
            '[' => {
                if !current.is_empty() {
                    keys.push(std::mem::take(&mut current));
                }
                let quote = match chars.peek() {
                    Some(&q @ ('"' | '\'')) => {
                        chars.next();
                        Some(q)
                    }
                    _ => None,
                };
                let mut key = String::new();
                while let Some(k) = chars.next() {
                    if Some(k) == quote && chars.peek() == Some(&']') {
                        chars.next();
                        break;
                    }
                    if quote.is_none() && k == ']' {
                        break;
                    }
                    key.push(k);
                }
                keys.push(key);
                if chars.peek() == Some(&'.') {
                    chars.next();
                }
            }
            other => current.push(other),
        }
    }
    if !current.is_empty() || keys.is_empty() {
        keys.push(current);
    }
    let mut value = obj.clone();
    for key in keys {
        if value.is_undefined() || value.is_none() {
            return Value::UNDEFINED;
        }
        let next = match value.kind() {
            ValueKind::Seq | ValueKind::Iterable => match key.parse::<usize>() {
                Ok(i) => get_opt(&value, &Value::from(i)),
                Err(_) if key == "length" => Some(js::js_length(&value)),
                Err(_) => None,
            },
            ValueKind::String if key == "length" => Some(js::js_length(&value)),
            _ => get_opt(&value, &Value::from(key.as_str())),
        };
        value = next.unwrap_or(Value::UNDEFINED);
    }
    value
}

fn first_arg(args: &[Value]) -> Value {
    args.iter()
        .find(|a| !a.is_kwargs())
        .cloned()
        .unwrap_or(Value::UNDEFINED)
}

/// Registers the four Backstage filters.
pub(crate) fn register(env: &mut Environment<'static>, integrations: Arc<Integrations>) {
    let ints = integrations.clone();
    env.add_filter("parseRepoUrl", move |v: Value| -> Result<Value, Error> {
        parse_repo_url(&to_js_string(&v), &ints)
            .map(repo_spec_value)
            .map_err(|e| input_error(e.to_string()))
    });
    let ints = integrations;
    env.add_filter("projectSlug", move |v: Value| -> Result<Value, Error> {
        let spec = parse_repo_url(&to_js_string(&v), &ints).map_err(|e| input_error(e.to_string()))?;
        let owner = spec.owner.unwrap_or_else(|| "undefined".to_string());
        Ok(Value::from(format!("{owner}/{}", spec.repo)))
    });
    env.add_filter("parseEntityRef", |v: Value, a: Rest<Value>| {
        parse_entity_ref(&v, &first_arg(&a))
    });
    env.add_filter("pick", |v: Value, a: Rest<Value>| pick(&v, &first_arg(&a)));
}
