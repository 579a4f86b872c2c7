//! JSON Schema validation with errors in the shape of the `jsonschema` npm
//! library that Backstage uses: `{path, property, message, schema, instance,
//! name, argument, stack}`. Used for template parameters and action inputs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::{json, Value};

/// Compiled validators by schema text. Templates and actions validate
/// against the same few schemas on every task, dry-run and step; compiling
/// one (its `pattern` regexes, formats) cost more than validating.
static VALIDATORS: Mutex<Option<HashMap<String, Arc<jsonschema::Validator>>>> = Mutex::new(None);
/// Distinct schemas kept; the cache is emptied when it is full (inline
/// dry-run templates can bring any number of schemas).
const VALIDATOR_CACHE_SIZE: usize = 256;

fn validator(schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
    let key = schema.to_string();
    if let Some(v) = VALIDATORS.lock().ok().and_then(|c| c.as_ref()?.get(&key).cloned()) {
        return Ok(v);
    }
    // A schema without `$schema` is read as draft 7, the draft Backstage's
    // `jsonschema` library follows (`definitions`, `dependencies`, `items`
    // as a list), not as the crate's default 2020-12. That also keeps the
    // meta-schema check cheap: 2020-12's meta-schema is a web of
    // `$dynamicRef`s whose validator held ~17 MiB of heap for the process's
    // life and cost 30 ms on the first request.
    let mut options = jsonschema::options().should_validate_formats(true);
    if schema.get("$schema").is_none() {
        options = options.with_draft(jsonschema::Draft::Draft7);
    }
    let compiled = Arc::new(options.build(schema).map_err(|e| e.to_string())?);
    if let Ok(mut cache) = VALIDATORS.lock() {
        let cache = cache.get_or_insert_with(HashMap::new);
        if cache.len() >= VALIDATOR_CACHE_SIZE {
            cache.clear();
        }
        cache.insert(key, compiled.clone());
    }
    Ok(compiled)
}

/// Validates `instance` against `schema`; the errors are in Backstage's shape.
/// A schema that cannot be compiled is reported as one error.
pub fn validate(schema: &Value, instance: &Value) -> Result<(), Vec<Value>> {
    let validator = match validator(schema) {
        Ok(v) => v,
        Err(e) => {
            let message = format!("has an invalid schema: {e}");
            return Err(vec![json!({
                "path": [],
                "property": "instance",
                "message": message,
                "schema": schema,
                "instance": instance,
                "name": "schema",
                "argument": Value::Null,
                "stack": format!("instance {message}"),
            })]);
        }
    };
    let errors: Vec<Value> = validator
        .iter_errors(instance)
        .map(|e| to_backstage_error(schema, instance, &e))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The `stack` lines of errors, joined as Backstage does in action input errors.
pub fn stacks(errors: &[Value]) -> String {
    errors
        .iter()
        .filter_map(|e| e.get("stack").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(", ")
}

fn pointer_segments(pointer: &str) -> Vec<String> {
    if pointer.is_empty() {
        return Vec::new();
    }
    pointer
        .trim_start_matches('/')
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

fn to_backstage_error(schema: &Value, values: &Value, error: &jsonschema::ValidationError<'_>) -> Value {
    // Instance path: array indices become numbers, as in the npm library.
    let mut path = Vec::new();
    let mut property = String::from("instance");
    let mut node = Some(values);
    for segment in pointer_segments(error.instance_path.as_str()) {
        match node {
            Some(Value::Array(items)) => {
                let index: usize = segment.parse().unwrap_or(0);
                property.push_str(&format!("[{index}]"));
                path.push(json!(index));
                node = items.get(index);
            }
            other => {
                if is_identifier(&segment) {
                    property.push('.');
                    property.push_str(&segment);
                } else {
                    property.push_str(&format!("[{}]", Value::String(segment.clone())));
                }
                node = other.and_then(|v| v.get(&segment));
                path.push(Value::String(segment));
            }
        }
    }
    // The schema object holding the failing keyword.
    let mut schema_segments = pointer_segments(error.schema_path.as_str());
    schema_segments.pop();
    let mut sub = Some(schema);
    for segment in &schema_segments {
        sub = match sub {
            Some(Value::Array(items)) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            Some(v) => v.get(segment),
            None => None,
        };
    }
    let sub_schema = sub.cloned().unwrap_or_else(|| json!({}));

    let (name, message, argument) = describe(error);
    json!({
        "path": path,
        "property": property,
        "message": message,
        "schema": sub_schema,
        "instance": error.instance.as_ref(),
        "name": name,
        "argument": argument,
        "stack": format!("{property} {message}"),
    })
}

fn js_list(values: &[Value]) -> String {
    values
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn type_names(kind: &TypeKind) -> Vec<Value> {
    match kind {
        TypeKind::Single(t) => vec![Value::String(t.to_string())],
        TypeKind::Multiple(set) => set.iter().map(|t| Value::String(t.to_string())).collect(),
    }
}

/// Keyword name, message and argument as the npm `jsonschema` library words them.
fn describe(error: &jsonschema::ValidationError<'_>) -> (&'static str, String, Value) {
    use ValidationErrorKind as K;
    match &error.kind {
        K::Required { property } => {
            let name = property
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| property.to_string());
            (
                "required",
                format!("requires property {}", Value::String(name.clone())),
                Value::String(name),
            )
        }
        K::Pattern { pattern } => (
            "pattern",
            format!("does not match pattern {}", Value::String(pattern.clone())),
            Value::String(pattern.clone()),
        ),
        K::Type { kind } => {
            let names = type_names(kind);
            (
                "type",
                format!("is not of a type(s) {}", js_list(&names)),
                Value::Array(names),
            )
        }
        K::Enum { options } => {
            let list = options.as_array().map(|a| js_list(a)).unwrap_or_default();
            ("enum", format!("is not one of enum values: {list}"), options.clone())
        }
        K::Constant { expected_value } => (
            "const",
            format!(
                "does not exactly match expected constant: {}",
                js_list(std::slice::from_ref(expected_value))
            ),
            expected_value.clone(),
        ),
        K::Minimum { limit } => (
            "minimum",
            format!("must be greater than or equal to {limit}"),
            limit.clone(),
        ),
        K::Maximum { limit } => (
            "maximum",
            format!("must be less than or equal to {limit}"),
            limit.clone(),
        ),
        K::ExclusiveMinimum { limit } => (
            "exclusiveMinimum",
            format!("must be greater than {limit}"),
            limit.clone(),
        ),
        K::ExclusiveMaximum { limit } => ("exclusiveMaximum", format!("must be less than {limit}"), limit.clone()),
        K::MinLength { limit } => (
            "minLength",
            format!("does not meet minimum length of {limit}"),
            json!(limit),
        ),
        K::MaxLength { limit } => (
            "maxLength",
            format!("does not meet maximum length of {limit}"),
            json!(limit),
        ),
        K::MinItems { limit } => (
            "minItems",
            format!("does not meet minimum length of {limit}"),
            json!(limit),
        ),
        K::MaxItems { limit } => (
            "maxItems",
            format!("does not meet maximum length of {limit}"),
            json!(limit),
        ),
        K::UniqueItems => ("uniqueItems", "contains duplicate item".into(), Value::Null),
        K::MinProperties { limit } => (
            "minProperties",
            format!("does not meet minimum property length of {limit}"),
            json!(limit),
        ),
        K::MaxProperties { limit } => (
            "maxProperties",
            format!("does not meet maximum property length of {limit}"),
            json!(limit),
        ),
        K::MultipleOf { multiple_of } => (
            "multipleOf",
            format!("is not a multiple of (divisible by) {multiple_of}"),
            json!(multiple_of),
        ),
        K::Format { format } => (
            "format",
            format!("does not conform to the {} format", Value::String(format.clone())),
            Value::String(format.clone()),
        ),
        K::AdditionalProperties { unexpected } => {
            let first = unexpected.first().cloned().unwrap_or_default();
            (
                "additionalProperties",
                format!(
                    "is not allowed to have the additional property {}",
                    Value::String(first.clone())
                ),
                Value::String(first),
            )
        }
        K::OneOfNotValid | K::OneOfMultipleValid => (
            "oneOf",
            "is not exactly one from the allowed subschemas".into(),
            Value::Null,
        ),
        K::AnyOf => ("anyOf", "is not any of the allowed subschemas".into(), Value::Null),
        K::Not { schema } => ("not", "is of prohibited type".into(), schema.clone()),
        _ => ("schema", error.to_string(), Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_without_dollar_schema_is_read_as_draft_7() {
        // Draft 7: `items` as a list checks position by position (2020-12
        // would want `prefixItems` and ignore the list form).
        let schema = json!({"type": "array", "items": [{"type": "string"}, {"type": "number"}]});
        assert!(validate(&schema, &json!(["a", 1])).is_ok());
        let errors = validate(&schema, &json!(["a", "b"])).expect_err("second item is not a number");
        assert_eq!(errors.len(), 1, "{errors:?}");
        // `dependencies` is draft 7's keyword (2020-12 split it up).
        let schema = json!({"type": "object", "dependencies": {"a": ["b"]}});
        assert!(validate(&schema, &json!({"a": 1})).is_err());
        assert!(validate(&schema, &json!({"a": 1, "b": 2})).is_ok());
    }

    #[test]
    fn a_schema_the_compiler_cannot_use_is_one_clear_error() {
        let schema = json!({"type": "object", "properties": {"name": {"type": "string", "pattern": "("}}});
        let errors = validate(&schema, &json!({"name": "x"})).expect_err("invalid pattern");
        assert_eq!(errors.len(), 1);
        let message = errors[0]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("has an invalid schema"), "{message}");
    }
}
