//! GitHub's REST description (`@octokit/openapi`, the file Octokit's
//! clients are generated from) as a judge of what the fake GitHub receives:
//! every request must name an operation that exists (method and path
//! template), with its path and query parameters of the declared types and
//! a body its request schema accepts. The fake answers a rejected request
//! with 400 and fails the test when it is dropped.
//!
//! The description lives outside the repository: `GITHUB_OPENAPI` names
//! `generated/ghec.json` of the npm package (`.ci/run` installs it), else
//! the cache `.ci/run` uses is tried. That is GitHub Enterprise Cloud's
//! description: github.com's operations plus the enterprise ones our
//! templates use (`internal` repositories), which github.com's own
//! `api.github.com.json` refuses. Without it the fake does not
//! validate and the test says so with one `skipped:` line, or fails under
//! `SCAFFOLDER_REQUIRE_SHARED` (CI).
//!
//! OpenAPI 3.0 schemas are JSON Schema draft 4 plus `nullable`: `$ref`s are
//! inlined from the document and `nullable: true` becomes a `null` type
//! before `jsonschema` compiles a body's schema.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use crate::common::data::{current_test, skip_or_fail};

/// A matched path template, its parameters, and which segments were literal.
type Match<'a> = (&'a str, Vec<(String, String)>, Vec<bool>);

pub struct Description {
    doc: Value,
    /// Path templates split into segments (`None` for a `{parameter}`).
    templates: Vec<(String, Vec<Option<String>>)>,
}

/// Where `.ci/run` installs the package when `GITHUB_OPENAPI` is not set.
fn default_location() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    Some(
        PathBuf::from(home).join(".cache/scaffolder/octokit-openapi/node_modules/@octokit/openapi/generated/ghec.json"),
    )
}

fn location() -> Option<PathBuf> {
    match std::env::var_os("GITHUB_OPENAPI") {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => default_location(),
    }
}

static LOADED: OnceLock<Option<Description>> = OnceLock::new();

/// The description, loaded once per test binary; `None` (after one
/// `skipped:` line for the calling test) when it is not installed.
pub fn description() -> Option<&'static Description> {
    let loaded = LOADED.get_or_init(|| {
        let path = location()?;
        let text = std::fs::read_to_string(&path).ok()?;
        let doc: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not GitHub's REST description: {e}", path.display()));
        Some(Description::new(doc))
    });
    if loaded.is_none() {
        skip_or_fail(&format!(
            "{}validation of the fake GitHub's requests needs GitHub's REST description: \
             `npm install --prefix ~/.cache/scaffolder/octokit-openapi @octokit/openapi` or set GITHUB_OPENAPI \
             to its generated/ghec.json (.ci/run does)",
            current_test()
        ));
    }
    loaded.as_ref()
}

impl Description {
    fn new(doc: Value) -> Description {
        let templates = doc["paths"]
            .as_object()
            .map(|paths| {
                paths
                    .keys()
                    .map(|template| {
                        let segments = template
                            .trim_start_matches('/')
                            .split('/')
                            .map(|s| (!(s.starts_with('{') && s.ends_with('}'))).then(|| s.to_owned()))
                            .collect();
                        (template.clone(), segments)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Description { doc, templates }
    }

    /// The template `path` matches, the most literal one when several do
    /// (`/repos/{owner}/{repo}/hooks` before `/repos/{owner}/{repo}/{x}`),
    /// with the values of its parameters.
    fn template(&self, path: &str) -> Option<(&str, Vec<(String, String)>)> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut best: Option<Match<'_>> = None;
        for (template, pattern) in &self.templates {
            if pattern.len() != segments.len() {
                continue;
            }
            let matches = pattern
                .iter()
                .zip(&segments)
                .all(|(p, s)| p.as_deref().map_or(!s.is_empty(), |literal| literal == *s));
            if !matches {
                continue;
            }
            let literal: Vec<bool> = pattern.iter().map(Option::is_some).collect();
            if best.as_ref().is_some_and(|(_, _, l)| *l >= literal) {
                continue;
            }
            let names = template
                .trim_start_matches('/')
                .split('/')
                .zip(&segments)
                .filter(|(p, _)| p.starts_with('{'))
                .map(|(p, s)| {
                    let value = percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
                    (p.trim_matches(['{', '}']).to_owned(), value)
                })
                .collect();
            best = Some((template, names, literal));
        }
        best.map(|(t, names, _)| (t, names))
    }

    /// `#/a/b` of the document.
    fn pointer(&self, reference: &str) -> Option<&Value> {
        self.doc.pointer(reference.strip_prefix('#')?)
    }

    fn resolved<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => self.pointer(reference).unwrap_or(&Value::Null),
            None => value,
        }
    }

    /// An OpenAPI 3.0 schema as a self-contained JSON Schema draft 4.
    fn json_schema(&self, schema: &Value, depth: usize) -> Value {
        if depth > 32 {
            // Recursive schemas: deeper than any request we send.
            return json!({});
        }
        match schema {
            Value::Object(map) => {
                if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                    return match self.pointer(reference) {
                        Some(target) => self.json_schema(target, depth + 1),
                        None => panic!("GitHub's description has a dangling $ref {reference}"),
                    };
                }
                let mut out = Map::new();
                for (key, value) in map {
                    match key.as_str() {
                        "nullable" | "example" | "examples" | "description" | "x-github" | "deprecated" => {}
                        "properties" | "patternProperties" => {
                            let props = value
                                .as_object()
                                .map(|p| {
                                    p.iter()
                                        .map(|(k, v)| (k.clone(), self.json_schema(v, depth + 1)))
                                        .collect::<Map<_, _>>()
                                })
                                .unwrap_or_default();
                            out.insert(key.clone(), Value::Object(props));
                        }
                        "enum" | "required" | "type" | "default" => {
                            out.insert(key.clone(), value.clone());
                        }
                        _ => {
                            out.insert(key.clone(), self.json_schema(value, depth + 1));
                        }
                    }
                }
                if map.get("nullable") == Some(&Value::Bool(true)) {
                    match out.get("type").cloned() {
                        Some(Value::String(t)) => {
                            out.insert("type".into(), json!([t, "null"]));
                            if let Some(Value::Array(values)) = out.get_mut("enum") {
                                values.push(Value::Null);
                            }
                        }
                        _ => return json!({"anyOf": [Value::Object(out), {"type": "null"}]}),
                    }
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(|v| self.json_schema(v, depth + 1)).collect()),
            other => other.clone(),
        }
    }

    /// Why GitHub would reject this request, if it would.
    pub fn check(&self, method: &str, path: &str, query: &str, body: &[u8]) -> Result<(), String> {
        let request = format!("{method} {path}{}{query}", if query.is_empty() { "" } else { "?" });
        let Some((template, path_values)) = self.template(path) else {
            return Err(format!("{request}: GitHub has no path like {path}"));
        };
        let item = &self.doc["paths"][template];
        let Some(operation) = item.get(method.to_ascii_lowercase()) else {
            return Err(format!("{request}: GitHub has no operation {method} {template}"));
        };
        let parameters: Vec<&Value> = item["parameters"]
            .as_array()
            .into_iter()
            .chain(operation["parameters"].as_array())
            .flatten()
            .map(|p| self.resolved(p))
            .collect();
        let declared = |place: &str, name: &str| {
            parameters
                .iter()
                .find(|p| p["in"] == place && p["name"] == name)
                .copied()
        };
        for (name, value) in &path_values {
            let Some(parameter) = declared("path", name) else {
                return Err(format!("{request}: {template} declares no path parameter {name}"));
            };
            self.check_parameter(&request, parameter, value)?;
        }
        let mut seen = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned();
            let Some(parameter) = declared("query", name) else {
                return Err(format!("{request}: {method} {template} has no query parameter {name}"));
            };
            self.check_parameter(&request, parameter, &value)?;
            seen.push(name.to_owned());
        }
        for parameter in &parameters {
            if parameter["in"] == "query" && parameter["required"] == true {
                let name = parameter["name"].as_str().unwrap_or_default();
                if !seen.iter().any(|s| s == name) {
                    return Err(format!("{request}: the query parameter {name} is required"));
                }
            }
        }
        let request_body = operation.get("requestBody").map(|b| self.resolved(b));
        let text = String::from_utf8_lossy(body);
        match request_body {
            None if text.trim().is_empty() => Ok(()),
            None => Err(format!("{request}: {method} {template} takes no body, got {text}")),
            Some(spec) if text.trim().is_empty() => {
                if spec["required"] == true {
                    Err(format!("{request}: {method} {template} requires a body"))
                } else {
                    Ok(())
                }
            }
            Some(spec) => {
                let Some(schema) = spec["content"]["application/json"].get("schema") else {
                    return Err(format!("{request}: {method} {template} takes no JSON body"));
                };
                let value: Value =
                    serde_json::from_str(&text).map_err(|e| format!("{request}: the body is not JSON: {e}"))?;
                let schema = self.json_schema(schema, 0);
                let validator = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft4)
                    .build(&schema)
                    .map_err(|e| format!("{request}: the description's schema does not compile: {e}"))?;
                let errors: Vec<String> = validator
                    .iter_errors(&value)
                    .map(|e| format!("{} at `{}`", e, e.instance_path()))
                    .collect();
                if errors.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "{request}: GitHub rejects the body {value}: {}",
                        errors.join("; ")
                    ))
                }
            }
        }
    }

    /// A path or query value against its parameter's schema (values arrive
    /// as text: numbers and booleans are parsed first).
    fn check_parameter(&self, request: &str, parameter: &Value, raw: &str) -> Result<(), String> {
        let schema = self.json_schema(&parameter["schema"], 0);
        let name = parameter["name"].as_str().unwrap_or_default();
        let value = match schema["type"].as_str() {
            Some("integer") => match raw.parse::<i64>() {
                Ok(n) => json!(n),
                Err(_) => return Err(format!("{request}: parameter {name} must be an integer, got {raw:?}")),
            },
            Some("number") => match raw.parse::<f64>() {
                Ok(n) => json!(n),
                Err(_) => return Err(format!("{request}: parameter {name} must be a number, got {raw:?}")),
            },
            Some("boolean") => match raw {
                "true" => json!(true),
                "false" => json!(false),
                _ => {
                    return Err(format!(
                        "{request}: parameter {name} must be true or false, got {raw:?}"
                    ))
                }
            },
            // Arrays of strings travel comma-separated (`style: form`).
            Some("array") => json!(raw.split(',').collect::<Vec<_>>()),
            _ => json!(raw),
        };
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .build(&schema)
            .map_err(|e| format!("{request}: the schema of parameter {name} does not compile: {e}"))?;
        let first = validator.iter_errors(&value).next().map(|e| e.to_string());
        match first {
            None => Ok(()),
            Some(e) => Err(format!("{request}: parameter {name}={raw:?}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_validator_knows_what_github_accepts_and_rejects() {
        let Some(description) = description() else {
            return;
        };
        let ok = |m: &str, p: &str, q: &str, b: &str| description.check(m, p, q, b.as_bytes());
        ok("GET", "/repos/acme/svc", "", "").unwrap();
        ok("GET", "/repos/acme/svc/pulls", "state=open&head=acme%3Ab", "").unwrap();
        ok("POST", "/repos/acme/svc/hooks", "", r#"{"name":"web","config":{"url":"https://x.example/h","content_type":"json","insecure_ssl":"0"},"events":["push"],"active":true}"#).unwrap();
        // Operations that do not exist, parameters of the wrong type, unknown
        // query parameters, bodies GitHub refuses.
        assert!(ok("DELETE", "/user/repos", "", "")
            .unwrap_err()
            .contains("no operation"));
        assert!(ok("GET", "/repos/acme", "", "").unwrap_err().contains("no path"));
        assert!(ok("PATCH", "/repos/acme/svc/hooks/abc", "", "{}")
            .unwrap_err()
            .contains("integer"));
        assert!(ok("GET", "/repos/acme/svc/pulls", "colour=red", "")
            .unwrap_err()
            .contains("query parameter colour"));
        assert!(ok(
            "POST",
            "/repos/acme/svc/hooks",
            "",
            r#"{"config":{"url":"https://x"},"activ":true}"#
        )
        .unwrap_err()
        .contains("rejects the body"));
        assert!(ok("POST", "/repos/acme/svc/pulls", "", r#"{"title":"t"}"#)
            .unwrap_err()
            .contains("head"));
        // `nullable` is understood.
        ok("PUT", "/repos/acme/svc/branches/main/protection", "", r#"{"required_status_checks":null,"enforce_admins":null,"required_pull_request_reviews":null,"restrictions":null}"#).unwrap();
    }
}
