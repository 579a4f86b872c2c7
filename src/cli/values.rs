//! Parameter values and secrets from the command line: `--values FILE`,
//! `--set key=value`, `--secret key=value` and `SCAFFOLDER_SECRET_<NAME>`;
//! schema defaults; the keys a template declares; prompts for the required
//! values not given; validation of every shown page at once.

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::template::validate_parameters;
use crate::templating::Renderer;
use crate::validation::validate;

/// Why values given on the command line (or typed at a prompt) are refused.
#[derive(Debug, thiserror::Error)]
pub enum ValuesError {
    #[error("'{0}' is not key=value")]
    NotKeyValue(String),
    #[error("'{0}' has an empty key")]
    EmptyKey(String),
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    Yaml { path: PathBuf, source: serde_norway::Error },
    #[error("{}: values must be a mapping", .0.display())]
    NotAMapping(PathBuf),
    /// `--set` keys no parameter page declares; the message lists the known ones.
    #[error("{0}")]
    UnknownKeys(String),
    /// A typed answer that does not read as its property's type.
    #[error("'{answer}' is not {expected}")]
    Answer { answer: String, expected: &'static str },
    #[error("type a mapping, e.g. {{key: value}}")]
    AnswerNotAMapping,
}

/// Splits `key=value`; the value is read as a YAML scalar or flow list
/// (`replicas=3`, `tags=[a,b]`), and kept as a string when it is not YAML.
pub fn key_value(raw: &str) -> Result<(String, Value), ValuesError> {
    let (key, value) = raw
        .split_once('=')
        .ok_or_else(|| ValuesError::NotKeyValue(raw.to_owned()))?;
    if key.is_empty() {
        return Err(ValuesError::EmptyKey(raw.to_owned()));
    }
    let parsed: Value = serde_norway::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    // An empty value is the empty string, not YAML's null.
    let parsed = if value.is_empty() {
        Value::String(String::new())
    } else {
        parsed
    };
    Ok((key.to_owned(), parsed))
}

/// The values of `--values FILE` (a YAML mapping), then every `--set`.
pub fn load_values(file: Option<&Path>, set: &[String]) -> Result<Map<String, Value>, ValuesError> {
    let mut values = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ValuesError::Read {
                path: path.to_owned(),
                source,
            })?;
            let parsed = serde_norway::from_str::<Value>(&text).map_err(|source| ValuesError::Yaml {
                path: path.to_owned(),
                source,
            })?;
            match parsed {
                Value::Object(map) => map,
                Value::Null => Map::new(),
                _ => return Err(ValuesError::NotAMapping(path.to_owned())),
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
pub fn load_secrets(env: &[(String, String)], flags: &[String]) -> Result<Map<String, Value>, ValuesError> {
    let mut secrets = Map::new();
    for (key, value) in env {
        if let Some(name) = key.strip_prefix("SCAFFOLDER_SECRET_").filter(|n| !n.is_empty()) {
            secrets.insert(secret_name(name), Value::String(value.clone()));
        }
    }
    for raw in flags {
        let (key, _) = raw
            .split_once('=')
            .ok_or_else(|| ValuesError::NotKeyValue(raw.clone()))?;
        if key.is_empty() {
            return Err(ValuesError::EmptyKey(raw.clone()));
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

/// Whether a parameter page is shown, as the server decides it (`when`).
pub fn page_visible(renderer: &Renderer, page: &Value, values: &Value) -> bool {
    match page.get("when") {
        None => true,
        Some(condition) => match renderer.render_value(condition, &json!({ "parameters": values })) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::String(s)) => !s.is_empty() && s != "false",
            Some(_) => true,
        },
    }
}

/// Every property name the parameter pages declare, including those of
/// conditional branches (`dependencies`, `allOf`/`anyOf`/`oneOf`,
/// `if`/`then`/`else`), which the form shows once their condition holds.
pub fn known_keys(pages: &[&Value]) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for page in pages {
        collect_keys(page, &mut keys, 0);
    }
    keys
}

fn collect_keys(schema: &Value, keys: &mut BTreeSet<String>, depth: usize) {
    // Branches nest only a few levels in practice; a bound keeps a
    // pathological template from recursing without end.
    if depth > 16 {
        return;
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        keys.extend(props.keys().cloned());
    }
    for combinator in ["allOf", "anyOf", "oneOf"] {
        if let Some(branches) = schema.get(combinator).and_then(Value::as_array) {
            for branch in branches {
                collect_keys(branch, keys, depth + 1);
            }
        }
    }
    for branch in ["if", "then", "else"] {
        if let Some(branch) = schema.get(branch) {
            collect_keys(branch, keys, depth + 1);
        }
    }
    // `dependencies: {a: [b]}` names properties declared elsewhere;
    // `dependencies: {a: {schema}}` may declare new ones.
    if let Some(deps) = schema.get("dependencies").and_then(Value::as_object) {
        for dep in deps.values().filter(|d| d.is_object()) {
            collect_keys(dep, keys, depth + 1);
        }
    }
}

/// Refuses `--set` keys that no parameter page declares (a typo would
/// otherwise be sent along and ignored), listing the ones it does.
pub fn check_set_keys(pages: &[&Value], set: &[String]) -> Result<(), ValuesError> {
    let known = known_keys(pages);
    let unknown: Vec<&str> = set
        .iter()
        .filter_map(|raw| raw.split_once('=').map(|(key, _)| key))
        .filter(|key| !known.contains(*key))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let mut message = String::new();
    for key in &unknown {
        message.push_str(&format!("--set {key}: the template has no parameter '{key}'"));
        if let Some(near) = nearest(key, &known) {
            message.push_str(&format!(" (did you mean '{near}'?)"));
        }
        message.push('\n');
    }
    if known.is_empty() {
        message.push_str("it declares no parameters");
    } else {
        let list: Vec<&str> = known.iter().map(String::as_str).collect();
        message.push_str(&format!("its parameters are: {}", list.join(", ")));
    }
    Err(ValuesError::UnknownKeys(message))
}

/// The known key closest to a mistyped one, when it is close enough to be
/// the likely intent (at most a third of its letters differ).
fn nearest<'a>(key: &str, known: &'a BTreeSet<String>) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(&key.to_lowercase(), &k.to_lowercase()), k))
        .filter(|(d, k)| *d <= (k.chars().count() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

/// Levenshtein distance, with a swap of two neighbours counting once.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// Who answers for missing values: the terminal, or a script in tests.
pub trait Ask {
    /// A page of the form begins.
    fn page(&mut self, title: &str);
    /// The value of one property; `None` when input ended.
    fn ask(&mut self, key: &str, schema: &Value) -> Option<Value>;
}

/// Asks on stderr, reads stdin.
pub struct Terminal;

impl Ask for Terminal {
    fn page(&mut self, title: &str) {
        let _ = writeln!(std::io::stderr(), "{title}");
    }

    fn ask(&mut self, key: &str, schema: &Value) -> Option<Value> {
        prompt_on(&mut std::io::stdin().lock(), &mut std::io::stderr(), key, schema)
    }
}

/// The values to validate: those given, then (with `ask`) an answer for every
/// required property of each shown page that was not given, a schema
/// `default` offered as the answer, then the defaults of the rest, as the
/// form fills them.
pub fn fill_values(
    pages: &[&Value],
    given: Map<String, Value>,
    visible: &dyn Fn(&Value, &Value) -> bool,
    ask: Option<&mut dyn Ask>,
) -> Map<String, Value> {
    let mut values = given;
    if let Some(ask) = ask {
        'pages: for page in pages {
            // The form decides `when` with the defaults already filled in.
            let mut shown = values.clone();
            apply_defaults(pages, &mut shown);
            if !visible(page, &Value::Object(shown)) {
                continue;
            }
            let missing: Vec<String> = missing_required(page, &values).into_iter().map(str::to_owned).collect();
            if missing.is_empty() {
                continue;
            }
            if let Some(title) = page.get("title").and_then(Value::as_str) {
                ask.page(title);
            }
            for key in missing {
                let schema = page
                    .get("properties")
                    .and_then(|p| p.get(&key))
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                match ask.ask(&key, &schema) {
                    Some(value) => {
                        values.insert(key, value);
                    }
                    None => break 'pages,
                }
            }
        }
    }
    apply_defaults(pages, &mut values);
    values
}

/// Validates the values against every shown page and reports the errors of
/// all of them at once (the server, like Backstage, stops at the first
/// failing page). Returns the values to send: those of hidden pages dropped.
pub fn validate_all(pages: &[&Value], values: &Value, visible: impl Fn(&Value) -> bool) -> Result<Value, Vec<Value>> {
    let mut errors: Vec<Value> = Vec::new();
    for page in pages.iter().filter(|p| visible(p)) {
        let mut schema = (*page).clone();
        if let Some(obj) = schema.as_object_mut() {
            obj.remove("when");
        }
        if let Err(found) = validate(&schema, values) {
            for error in found {
                // A property on two pages fails twice in the same words.
                if !errors.iter().any(|e| e.get("stack") == error.get("stack")) {
                    errors.push(error);
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    validate_parameters(pages, values, visible)
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
pub fn parse_answer(schema: &Value, answer: &str) -> Result<Value, ValuesError> {
    let answer = answer.trim();
    let not = |expected: &'static str| ValuesError::Answer {
        answer: answer.to_owned(),
        expected,
    };
    match type_of(schema) {
        "integer" => answer.parse::<i64>().map(Value::from).map_err(|_| not("an integer")),
        "number" => {
            let n: f64 = answer.parse().map_err(|_| not("a number"))?;
            serde_json::Number::from_f64(n)
                .map(Value::Number)
                .ok_or_else(|| not("a finite number"))
        }
        "boolean" => match answer.to_ascii_lowercase().as_str() {
            "y" | "yes" | "true" | "1" => Ok(Value::Bool(true)),
            "n" | "no" | "false" | "0" => Ok(Value::Bool(false)),
            _ => Err(not("yes or no")),
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
        "object" => match serde_norway::from_str::<Value>(answer) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(ValuesError::AnswerNotAMapping),
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
    if let Some(default) = schema.get("default") {
        text.push_str(&format!("\n  [{}] (Enter keeps it)", answer_text(default)));
    }
    text
}

/// A value as it would be typed at the prompt.
fn answer_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "y".into(),
        Value::Bool(false) => "n".into(),
        Value::Array(items) => items.iter().map(answer_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Whether missing values may be asked for: stdin and stderr are terminals.
pub fn can_prompt() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks for one property until the answer parses and fits the schema. A
/// `default` is shown and an empty answer takes it. `None` when input ended.
pub fn prompt_on(input: &mut impl BufRead, out: &mut impl Write, key: &str, schema: &Value) -> Option<Value> {
    let default = schema.get("default");
    loop {
        let _ = write!(out, "{}\n> ", prompt_text(key, schema));
        let _ = out.flush();
        let mut line = String::new();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if let (Some(default), true) = (default, line.trim().is_empty()) {
            return Some(default.clone());
        }
        let checked = parse_answer(schema, &line)
            .map_err(|e| e.to_string())
            .and_then(|value| {
                // The answer alone against the property's schema, so a bad one
                // is asked again rather than failing the whole run.
                match validate(schema, &value) {
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
                let _ = writeln!(out, "  {problem}");
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

    fn gitops_page() -> Value {
        json!({"title": "Deploy", "required": ["name", "gitopsRepoUrl"], "properties": {
            "name": {"type": "string"},
            "gitopsRepoUrl": {"type": "string", "default": "github.com?owner=acme&repo=infra"},
            "replicas": {"type": "integer", "default": 1}}})
    }

    #[test]
    fn known_keys_include_conditional_branches() {
        let page = json!({
            "properties": {"kind": {"enum": ["a", "b"]}},
            "dependencies": {
                "kind": {"oneOf": [
                    {"properties": {"kind": {"const": "a"}, "aOnly": {"type": "string"}}},
                    {"properties": {"kind": {"const": "b"}, "bOnly": {"type": "string"}}}]},
                "aOnly": ["kind"]},
            "allOf": [{"if": {"properties": {"kind": {"const": "a"}}},
                       "then": {"properties": {"thenKey": {}}}, "else": {"properties": {"elseKey": {}}}}]
        });
        let keys: Vec<String> = known_keys(&[&page]).into_iter().collect();
        assert_eq!(keys, ["aOnly", "bOnly", "elseKey", "kind", "thenKey"]);
        assert!(check_set_keys(&[&page], &["bOnly=x".into(), "thenKey=1".into()]).is_ok());
    }

    #[test]
    fn unknown_set_keys_are_refused_with_the_known_ones() {
        let page = gitops_page();
        let message = check_set_keys(&[&page], &["nmae=x".into(), "name=y".into()])
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("--set nmae: the template has no parameter 'nmae'"),
            "{message}"
        );
        assert!(message.contains("did you mean 'name'?"), "{message}");
        assert!(
            message.contains("its parameters are: gitopsRepoUrl, name, replicas"),
            "{message}"
        );
        assert!(!message.contains("--set name:"), "{message}");
        let none = check_set_keys(&[], &["x=1".into()]).unwrap_err().to_string();
        assert!(none.contains("declares no parameters"), "{none}");
        assert_eq!(edit_distance("nmae", "name"), 1);
        assert_eq!(nearest("zzzz", &known_keys(&[&page])), None);
    }

    /// Answers from a script; records what was asked.
    struct Script {
        input: std::io::Cursor<Vec<u8>>,
        shown: Vec<u8>,
        asked: Vec<String>,
    }

    impl Ask for Script {
        fn page(&mut self, title: &str) {
            self.shown.extend_from_slice(format!("{title}\n").as_bytes());
        }
        fn ask(&mut self, key: &str, schema: &Value) -> Option<Value> {
            self.asked.push(key.to_owned());
            prompt_on(&mut self.input, &mut self.shown, key, schema)
        }
    }

    fn script(answers: &str) -> Script {
        Script {
            input: std::io::Cursor::new(answers.as_bytes().to_vec()),
            shown: Vec::new(),
            asked: Vec::new(),
        }
    }

    #[test]
    fn required_values_with_a_default_are_asked_with_it_offered() {
        let page = gitops_page();
        let always = |_: &Value, _: &Value| true;
        // Enter keeps the offered default.
        let mut terminal = script("svc\n\n");
        let values = fill_values(&[&page], Map::new(), &always, Some(&mut terminal));
        assert_eq!(terminal.asked, ["name", "gitopsRepoUrl"]);
        let shown = String::from_utf8_lossy(&terminal.shown).into_owned();
        assert!(
            shown.contains("[github.com?owner=acme&repo=infra] (Enter keeps it)"),
            "{shown}"
        );
        assert_eq!(
            json!(values),
            json!({"name": "svc", "gitopsRepoUrl": "github.com?owner=acme&repo=infra", "replicas": 1})
        );
        // A typed answer replaces it; given values are not asked again.
        let given: Map<String, Value> = serde_json::from_value(json!({"name": "svc"})).unwrap();
        let mut terminal = script("git.local?owner=me&repo=infra\n");
        let values = fill_values(&[&page], given.clone(), &always, Some(&mut terminal));
        assert_eq!(terminal.asked, ["gitopsRepoUrl"]);
        assert_eq!(values["gitopsRepoUrl"], "git.local?owner=me&repo=infra");
        // Without a terminal the default is taken silently.
        let values = fill_values(&[&page], given, &always, None);
        assert_eq!(values["gitopsRepoUrl"], "github.com?owner=acme&repo=infra");
    }

    #[test]
    fn hidden_pages_are_not_asked_and_every_shown_page_is_validated() {
        let first = json!({"required": ["name"], "properties": {"name": {"type": "string", "pattern": "^[a-z]+$"}, "more": {"type": "boolean", "default": false}}});
        let second = json!({"when": "more", "required": ["replicas"], "properties": {"replicas": {"type": "integer", "minimum": 1}}});
        let third = json!({"properties": {"port": {"type": "integer", "maximum": 65535}}});
        let visible = |page: &Value, values: &Value| match page.get("when").and_then(Value::as_str) {
            Some(flag) => values.get(flag) == Some(&Value::Bool(true)),
            None => true,
        };
        let mut terminal = script("svc\n");
        fill_values(&[&first, &second], Map::new(), &visible, Some(&mut terminal));
        assert_eq!(terminal.asked, ["name"]);

        let values = json!({"name": "Bad", "more": true, "replicas": 0, "port": 70000});
        let errors = validate_all(&[&first, &second, &third], &values, |p| visible(p, &values)).unwrap_err();
        let stacks: Vec<&str> = errors.iter().filter_map(|e| e["stack"].as_str()).collect();
        assert_eq!(stacks.len(), 3, "{stacks:?}");
        assert!(
            stacks[0].starts_with("instance.name does not match pattern"),
            "{stacks:?}"
        );
        assert!(stacks[1].contains("instance.replicas"), "{stacks:?}");
        assert!(stacks[2].contains("instance.port"), "{stacks:?}");
        // Valid: values of a hidden page are dropped, as the server does.
        let values = json!({"name": "ok", "more": false, "replicas": 3});
        let kept = validate_all(&[&first, &second], &values, |p| visible(p, &values)).unwrap();
        assert_eq!(kept, json!({"name": "ok", "more": false}));
    }
}
