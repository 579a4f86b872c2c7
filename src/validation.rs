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
    let compiled = Arc::new(options.build(schema).map_err(|e| build_error_message(schema, &e))?);
    if let Ok(mut cache) = VALIDATORS.lock() {
        let cache = cache.get_or_insert_with(HashMap::new);
        if cache.len() >= VALIDATOR_CACHE_SIZE {
            cache.clear();
        }
        cache.insert(key, compiled.clone());
    }
    Ok(compiled)
}

/// Why `schema` does not compile, worded as before the crate renamed an
/// unknown `$schema` a "meta-schema". Of several faults a draft-7 schema has
/// against its meta-schema, the one named is the first in the meta-schema's
/// order (the crate reports the first it finds checking cheap keywords first).
fn build_error_message(schema: &Value, error: &jsonschema::ValidationError<'_>) -> String {
    if let ValidationErrorKind::Referencing(jsonschema::ReferencingError::UnknownSpecification { specification }) =
        error.kind()
    {
        return format!("Unknown specification: {specification}");
    }
    let message = error.to_string();
    if schema.get("$schema").is_some() {
        return message;
    }
    let meta = jsonschema::draft7::meta::validator();
    let faults: Vec<_> = meta.iter_errors(schema).collect();
    if !faults.iter().any(|f| f.to_string() == message) {
        // Not a meta-schema fault (an unresolvable `$ref`, say).
        return message;
    }
    let meta_schema: &Value = &referencing::meta::DRAFT7;
    in_schema_order(meta_schema, meta_schema, faults)
        .first()
        .map_or(message, ToString::to_string)
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
    let errors: Vec<Value> = in_schema_order(schema, schema, validator.iter_errors(instance).collect())
        .iter()
        .map(|e| to_backstage_error(schema, instance, e))
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

/// One step of an error's place in the report order (see [`in_schema_order`]).
#[derive(Clone, PartialEq, Eq)]
enum Step {
    /// A keyword, by its position among its schema object's keys.
    Keyword(usize),
    /// A property of `properties`, by its position there.
    Property(usize),
    /// Anything else (an array index, a `patternProperties` match, an
    /// `allOf` branch): kept in the order the crate reached it.
    Reached(String),
}

/// A node of the tree the errors are sorted in: the errors ending here and
/// the branches below, in the order the crate first reached them.
#[derive(Default)]
struct Branches {
    entries: Vec<Entry>,
}

enum Entry {
    Error(usize),
    Branch(Step, Branches),
}

impl Branches {
    fn insert(&mut self, steps: &[Step], error: usize) {
        let Some((first, rest)) = steps.split_first() else {
            self.entries.push(Entry::Error(error));
            return;
        };
        let found = self
            .entries
            .iter()
            .position(|e| matches!(e, Entry::Branch(step, _) if step == first));
        let index = found.unwrap_or_else(|| {
            self.entries.push(Entry::Branch(first.clone(), Branches::default()));
            self.entries.len() - 1
        });
        if let Entry::Branch(_, below) = &mut self.entries[index] {
            below.insert(rest, error);
        }
    }

    fn flatten(mut self, out: &mut Vec<usize>) {
        // Keywords (and `properties` entries) go in schema order; an entry
        // the order cannot place keeps the crate's.
        let rank = |e: &Entry| match e {
            Entry::Branch(Step::Keyword(p) | Step::Property(p), _) => Some(*p),
            _ => None,
        };
        if self.entries.iter().all(|e| rank(e).is_some()) {
            self.entries.sort_by_key(|e| rank(e).unwrap_or(usize::MAX));
        }
        for entry in self.entries {
            match entry {
                Entry::Error(i) => out.push(i),
                Entry::Branch(_, below) => below.flatten(out),
            }
        }
    }
}

/// The schema a local `$ref` (`#` or `#/json/pointer`) names in `root`.
fn local_ref<'s>(root: &'s Value, reference: Option<&Value>) -> Option<&'s Value> {
    let fragment = reference?.as_str()?.strip_prefix('#')?;
    root.pointer(fragment)
}

/// Where an error reached through `evaluation` (keyword path from `start`,
/// `$ref`s included) sits in the report order.
fn order_steps(root: &Value, start: &Value, evaluation: &[String], instance: &[String]) -> Vec<Step> {
    let mut steps = Vec::with_capacity(evaluation.len());
    let mut node = Some(start);
    let mut segments = evaluation.iter();
    let mut instance = instance.iter();
    while let Some(keyword) = segments.next() {
        let object = node.and_then(Value::as_object);
        // `additionalProperties` (false or a schema) checks `properties`
        // and `patternProperties` with it, key by key of the instance, at
        // its own place; `if` checks `then` and `else` at its place.
        let fused = matches!(
            object.and_then(|o| o.get("additionalProperties")),
            Some(Value::Bool(false) | Value::Object(_))
        );
        let anchor = match keyword.as_str() {
            "properties" | "patternProperties" if fused => "additionalProperties",
            "then" | "else" if object.is_some_and(|o| o.contains_key("if")) => "if",
            other => other,
        };
        let position = object
            .and_then(|o| o.keys().position(|k| k == anchor))
            .unwrap_or(usize::MAX);
        steps.push(Step::Keyword(position));
        let value = object.and_then(|o| o.get(keyword));
        let is_last = segments.len() == 0;
        node = match keyword.as_str() {
            _ if is_last => None,
            "properties" => {
                let name = segments.next().cloned().unwrap_or_default();
                instance.next();
                let properties = value.and_then(Value::as_object);
                steps.push(if fused {
                    Step::Reached(name.clone())
                } else {
                    Step::Property(
                        properties
                            .and_then(|p| p.keys().position(|k| *k == name))
                            .unwrap_or(usize::MAX),
                    )
                });
                properties.and_then(|p| p.get(&name))
            }
            "patternProperties" => {
                let pattern = segments.next().cloned().unwrap_or_default();
                let key = instance.next().cloned().unwrap_or_default();
                steps.push(Step::Reached(format!("{pattern}\u{0}{key}")));
                value.and_then(|p| p.get(&pattern))
            }
            "items" | "prefixItems" if value.is_some_and(Value::is_array) || keyword == "prefixItems" => {
                let index = segments.next().cloned().unwrap_or_default();
                instance.next();
                steps.push(Step::Reached(index.clone()));
                value.and_then(|v| v.get(index.parse::<usize>().ok()?))
            }
            "items" | "additionalItems" | "additionalProperties" | "unevaluatedItems" | "unevaluatedProperties" => {
                steps.push(Step::Reached(instance.next().cloned().unwrap_or_default()));
                value
            }
            "allOf" | "anyOf" | "oneOf" => {
                let index = segments.next().cloned().unwrap_or_default();
                steps.push(Step::Reached(index.clone()));
                value.and_then(|v| v.get(index.parse::<usize>().ok()?))
            }
            "dependencies" | "dependentSchemas" => {
                let name = segments.next().cloned().unwrap_or_default();
                steps.push(Step::Reached(name.clone()));
                value.and_then(|v| v.get(&name))
            }
            "$ref" => local_ref(root, value),
            _ => value,
        };
    }
    steps
}

/// `errors` in the order the npm `jsonschema` library reports them (and the
/// crate did before it ran cheap keywords first): keywords in the order the
/// schema object lists them, `properties` in the order they are declared,
/// array items and anything else in the order the crate reached them. `root`
/// resolves local `$ref`s; `start` is the schema the errors' paths start at.
pub(crate) fn in_schema_order<'a>(
    root: &Value,
    start: &Value,
    errors: Vec<jsonschema::ValidationError<'a>>,
) -> Vec<jsonschema::ValidationError<'a>> {
    if errors.len() < 2 {
        return errors;
    }
    let mut tree = Branches::default();
    for (i, error) in errors.iter().enumerate() {
        let steps = order_steps(
            root,
            start,
            &pointer_segments(error.evaluation_path().as_str()),
            &pointer_segments(error.instance_path().as_str()),
        );
        tree.insert(&steps, i);
    }
    let mut order = Vec::with_capacity(errors.len());
    tree.flatten(&mut order);
    let mut slots: Vec<Option<jsonschema::ValidationError<'a>>> = errors.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
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
    for segment in pointer_segments(error.instance_path().as_str()) {
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
    // The schema object holding the failing keyword, found along the path
    // evaluation took (through `$ref`s, as the crate's `schema_path` read
    // before it became the canonical location behind references).
    let mut schema_segments = pointer_segments(error.evaluation_path().as_str());
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
        "instance": error.instance().as_ref(),
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
    match error.kind() {
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
            (
                "enum",
                format!("is not one of enum values: {list}"),
                Value::clone(options),
            )
        }
        K::Constant { expected_value } => (
            "const",
            format!(
                "does not exactly match expected constant: {}",
                js_list(std::slice::from_ref(&**expected_value))
            ),
            Value::clone(expected_value),
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
        K::OneOfNotValid { .. } | K::OneOfMultipleValid { .. } => (
            "oneOf",
            "is not exactly one from the allowed subschemas".into(),
            Value::Null,
        ),
        K::AnyOf { .. } => ("anyOf", "is not any of the allowed subschemas".into(), Value::Null),
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

    fn stack_lines(schema: &Value, instance: &Value) -> Vec<String> {
        validate(schema, instance)
            .expect_err("invalid")
            .iter()
            .map(|e| e["stack"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    #[test]
    fn errors_follow_the_order_the_schema_lists_its_keywords_and_properties() {
        // The crate checks cheap keywords first (`required` before
        // `properties`, `type`/`enum` before `maxLength`); Backstage's
        // library reports in the schema's own order.
        let schema = json!({
            "properties": {
                "name": {"maxLength": 1, "pattern": "^x", "enum": ["zz"]},
                "a": {"type": "string"},
                "b": {"type": "string"},
            },
            "required": ["owner"],
        });
        assert_eq!(
            stack_lines(&schema, &json!({"b": 1, "a": 2, "name": "yyy"})),
            [
                "instance.name does not meet maximum length of 1",
                "instance.name does not match pattern \"^x\"",
                "instance.name is not one of enum values: zz",
                "instance.a is not of a type(s) string",
                "instance.b is not of a type(s) string",
                "instance requires property \"owner\"",
            ]
        );
        // Items one after another, each with its errors in schema order;
        // `$ref`s followed; `additionalProperties` checks `properties` key
        // by key of the instance at its own place.
        let schema = json!({
            "definitions": {"item": {"required": ["id"], "properties": {"id": {"type": "integer"}}, "minProperties": 2}},
            "properties": {
                "list": {"items": {"$ref": "#/definitions/item"}, "minItems": 5},
                "extra": {"additionalProperties": false, "properties": {"z": {"type": "string"}, "a": {"type": "string"}}},
            },
        });
        let instance = json!({"list": [{"id": "x"}, {}], "extra": {"a": 1, "q": 0, "z": 2}});
        assert_eq!(
            stack_lines(&schema, &instance),
            [
                "instance.list[0].id is not of a type(s) integer",
                "instance.list[0] does not meet minimum property length of 2",
                "instance.list[1] requires property \"id\"",
                "instance.list[1] does not meet minimum property length of 2",
                "instance.list does not meet minimum length of 5",
                "instance.extra.a is not of a type(s) string",
                "instance.extra.z is not of a type(s) string",
                "instance.extra is not allowed to have the additional property \"q\"",
            ]
        );
    }

    #[test]
    fn an_invalid_schema_names_its_first_fault_in_the_meta_schemas_order() {
        let schema = json!({"properties": {"a": {"type": "strin", "minLength": -1, "pattern": "("}}});
        let errors = validate(&schema, &json!({"a": "x"})).expect_err("invalid schema");
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0]["message"],
            "has an invalid schema: -1 is less than the minimum of 0"
        );
        let schema = json!({"$schema": "https://example.com/my-schema", "type": "object"});
        let errors = validate(&schema, &json!({})).expect_err("unknown dialect");
        assert_eq!(
            errors[0]["message"],
            "has an invalid schema: Unknown specification: https://example.com/my-schema"
        );
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
