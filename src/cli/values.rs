//! Parameter values and secrets from the command line: `--values FILE`,
//! `--set key=value`, `--secret key=value` and `SCAFFOLDER_SECRET_<NAME>`;
//! schema defaults; interactive prompts for missing required values.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use serde_json::{Map, Value};

/// Splits `key=value`; the value is read as a YAML scalar or flow list
/// (`replicas=3`, `tags=[a,b]`), and kept as a string when it is not YAML.
pub fn key_value(raw: &str) -> Result<(String, Value), String> {
    let (key, value) = raw.split_once('=').ok_or_else(|| format!("'{raw}' is not key=value"))?;
    if key.is_empty() {
        return Err(format!("'{raw}' has an empty key"));
    }
    let parsed: Value = serde_yaml::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    // An empty value is the empty string, not YAML's null.
    let parsed = if value.is_empty() {
        Value::String(String::new())
    } else {
        parsed
    };
    Ok((key.to_owned(), parsed))
}

/// The values of `--values FILE` (a YAML mapping), then every `--set`.
pub fn load_values(file: Option<&Path>, set: &[String]) -> Result<Map<String, Value>, String> {
    let mut values = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            match serde_yaml::from_str::<Value>(&text).map_err(|e| format!("{}: {e}", path.display()))? {
                Value::Object(map) => map,
                Value::Null => Map::new(),
                _ => return Err(format!("{}: values must be a mapping", path.display())),
            }
        }
        None => Map::new(),
    };
    for raw in set {
        let (key, value) = key_value(raw)?;
        values.insert(key, value);
    }
    Ok(values)
}

/// `UPPER_SNAKE` → `upperSnake`; other names are kept as written.
fn secret_name(env_suffix: &str) -> String {
    let upper_snake = env_suffix
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !upper_snake {
        return env_suffix.to_owned();
    }
    let mut out = String::with_capacity(env_suffix.len());
    for (i, part) in env_suffix.split('_').filter(|p| !p.is_empty()).enumerate() {
        let lower = part.to_ascii_lowercase();
        if i == 0 {
            out.push_str(&lower);
        } else {
            let mut chars = lower.chars();
            if let Some(first) = chars.next() {
                out.push(first.to_ascii_uppercase());
                out.extend(chars);
            }
        }
    }
    out
}

/// Secrets from the environment (`SCAFFOLDER_SECRET_<NAME>`; an
/// `UPPER_SNAKE` name becomes `lowerCamel`, so `SCAFFOLDER_SECRET_BACKSTAGE_TOKEN`
/// is `secrets.backstageToken`), then `--secret key=value`, which win.
pub fn load_secrets(env: &[(String, String)], flags: &[String]) -> Result<Map<String, Value>, String> {
    let mut secrets = Map::new();
    for (key, value) in env {
        if let Some(name) = key.strip_prefix("SCAFFOLDER_SECRET_").filter(|n| !n.is_empty()) {
            secrets.insert(secret_name(name), Value::String(value.clone()));
        }
    }
    for raw in flags {
        let (key, _) = raw.split_once('=').ok_or_else(|| format!("'{raw}' is not key=value"))?;
        if key.is_empty() {
            return Err(format!("'{raw}' has an empty key"));
        }
        // Secrets are strings, taken verbatim.
        let value = &raw[key.len() + 1..];
        secrets.insert(key.to_owned(), Value::String(value.to_owned()));
    }
    Ok(secrets)
}

/// The parameter pages of a template as written (one object or a list).
pub fn pages_of(parameters: &Value) -> Vec<&Value> {
    match parameters {
        Value::Array(pages) => pages.iter().collect(),
        Value::Null => Vec::new(),
        page => vec![page],
    }
}

/// Fills in the `default` of every top-level property that has no value, as
/// the Backstage form does before the user types anything.
pub fn apply_defaults(pages: &[&Value], values: &mut Map<String, Value>) {
    for page in pages {
        let Some(props) = page.get("properties").and_then(Value::as_object) else {
            continue;
        };
        for (key, schema) in props {
            if let Some(default) = schema.get("default") {
                if !values.contains_key(key) {
                    values.insert(key.clone(), default.clone());
                }
            }
        }
    }
}

/// Required properties of a page that have no value yet.
pub fn missing_required<'a>(page: &'a Value, values: &Map<String, Value>) -> Vec<&'a str> {
    page.get("required")
        .and_then(Value::as_array)
        .map(|req| {
            req.iter()
                .filter_map(Value::as_str)
                .filter(|k| !values.contains_key(*k))
                .collect()
        })
        .unwrap_or_default()
}

fn type_of(schema: &Value) -> &str {
    match schema.get("type") {
        Some(Value::String(t)) => t,
        // `type: [string, "null"]`: the first non-null type.
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("string"),
        _ => "string",
    }
}

/// Reads what a person typed for a property of this schema.
pub fn parse_answer(schema: &Value, answer: &str) -> Result<Value, String> {
    let answer = answer.trim();
    match type_of(schema) {
        "integer" => answer
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("'{answer}' is not an integer")),
        "number" => {
            let n: f64 = answer.parse().map_err(|_| format!("'{answer}' is not a number"))?;
            serde_json::Number::from_f64(n)
                .map(Value::Number)
                .ok_or_else(|| format!("'{answer}' is not a finite number"))
        }
        "boolean" => match answer.to_ascii_lowercase().as_str() {
            "y" | "yes" | "true" | "1" => Ok(Value::Bool(true)),
            "n" | "no" | "false" | "0" => Ok(Value::Bool(false)),
            _ => Err(format!("'{answer}' is not yes or no")),
        },
        "array" => {
            let items = schema.get("items").unwrap_or(&Value::Null);
            if answer.is_empty() {
                return Ok(Value::Array(Vec::new()));
            }
            answer
                .split(',')
                .map(|part| parse_answer(items, part))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        "object" => match serde_yaml::from_str::<Value>(answer) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err("type a mapping, e.g. {key: value}".into()),
        },
        _ => Ok(Value::String(answer.to_owned())),
    }
}

fn prompt_text(key: &str, schema: &Value) -> String {
    let title = schema.get("title").and_then(Value::as_str).unwrap_or(key);
    let mut text = format!("{title} ({key})");
    if let Some(description) = schema.get("description").and_then(Value::as_str) {
        text.push_str(&format!("\n  {}", description.trim()));
    }
    let choices = schema
        .get("enum")
        .or_else(|| schema.pointer("/items/enum"))
        .and_then(Value::as_array);
    if let Some(choices) = choices {
        let shown: Vec<String> = choices
            .iter()
            .map(|c| c.as_str().map(str::to_owned).unwrap_or_else(|| c.to_string()))
            .collect();
        text.push_str(&format!("\n  one of: {}", shown.join(", ")));
    }
    match type_of(schema) {
        "array" => text.push_str("\n  (comma-separated)"),
        "boolean" => text.push_str(" [y/n]"),
        _ => {}
    }
    text
}

/// Whether missing values may be asked for: stdin and stderr are terminals.
pub fn can_prompt() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks for one property on the terminal until the answer parses.
/// `None` when stdin closed.
pub fn prompt(key: &str, schema: &Value) -> Option<Value> {
    let stdin = std::io::stdin();
    let mut err = std::io::stderr();
    loop {
        let _ = write!(err, "{}\n> ", prompt_text(key, schema));
        let _ = err.flush();
        let mut line = String::new();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        let checked = parse_answer(schema, &line).and_then(|value| {
            // The answer alone against the property's schema, so a bad one
            // is asked again rather than failing the whole run.
            match crate::validation::validate(schema, &value) {
                Ok(()) => Ok(value),
                Err(errors) => Err(errors
                    .iter()
                    .filter_map(|e| e.get("message").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("; ")),
            }
        });
        match checked {
            Ok(value) => return Some(value),
            Err(problem) => {
                let _ = writeln!(err, "  {problem}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_values_are_yaml_scalars() {
        assert_eq!(key_value("n=3").unwrap(), ("n".into(), json!(3)));
        assert_eq!(key_value("tags=[a, b]").unwrap(), ("tags".into(), json!(["a", "b"])));
        assert_eq!(key_value("s=a=b").unwrap(), ("s".into(), json!("a=b")));
        assert_eq!(key_value("e=").unwrap(), ("e".into(), json!("")));
        assert!(key_value("novalue").is_err());
        assert!(key_value("=x").is_err());
    }

    #[test]
    fn secrets_come_from_the_environment_and_flags() {
        let env = vec![
            ("SCAFFOLDER_SECRET_BACKSTAGE_TOKEN".to_owned(), "env".to_owned()),
            ("SCAFFOLDER_SECRET_myToken".to_owned(), "mine".to_owned()),
            ("OTHER".to_owned(), "x".to_owned()),
        ];
        let secrets = load_secrets(&env, &["myToken=flag=1".into()]).unwrap();
        assert_eq!(json!(secrets), json!({"backstageToken": "env", "myToken": "flag=1"}));
    }

    #[test]
    fn defaults_fill_only_missing_values() {
        let page = json!({"properties": {"a": {"default": 1}, "b": {"default": 2}, "c": {}}});
        let mut values: Map<String, Value> = serde_json::from_value(json!({"b": 5})).unwrap();
        apply_defaults(&[&page], &mut values);
        assert_eq!(json!(values), json!({"b": 5, "a": 1}));
        assert_eq!(missing_required(&json!({"required": ["a", "z"]}), &values), vec!["z"]);
    }

    #[test]
    fn answers_are_parsed_per_type() {
        assert_eq!(parse_answer(&json!({"type": "integer"}), " 4\n").unwrap(), json!(4));
        assert!(parse_answer(&json!({"type": "integer"}), "four").is_err());
        assert_eq!(parse_answer(&json!({"type": "number"}), "2.5").unwrap(), json!(2.5));
        assert_eq!(parse_answer(&json!({"type": "boolean"}), "Y").unwrap(), json!(true));
        assert_eq!(
            parse_answer(&json!({"type": "array", "items": {"type": "string"}}), "a, b").unwrap(),
            json!(["a", "b"])
        );
        assert_eq!(parse_answer(&json!({}), " hi ").unwrap(), json!("hi"));
        assert_eq!(
            parse_answer(&json!({"type": "object"}), "{a: 1}").unwrap(),
            json!({"a": 1})
        );
        assert!(prompt_text("clusters", &json!({"type": "array", "items": {"enum": ["x", "y"]}})).contains("x, y"));
    }
}
