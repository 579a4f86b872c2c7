//! Validation of task values against the template's parameter pages.

use serde_json::Value;

use crate::validation::validate;

/// One validation failure in Backstage's wire shape.
pub type ParameterError = Value;

/// Validates `values` against every visible page. A page whose `when` is false
/// (as decided by `page_visible`) is skipped, and values of properties only it
/// declares are dropped. Returns the values to store, or the errors of the
/// first failing page (Backstage stops at the first).
pub fn validate_parameters(
    pages: &[&Value],
    values: &Value,
    page_visible: impl Fn(&Value) -> bool,
) -> Result<Value, Vec<ParameterError>> {
    let mut kept = values.clone();
    for page in pages {
        if !page_visible(page) {
            if let (Some(props), Some(obj)) = (page.get("properties").and_then(Value::as_object), kept.as_object_mut())
            {
                let visible_elsewhere = |key: &str| {
                    pages
                        .iter()
                        .any(|p| page_visible(p) && p.get("properties").and_then(|ps| ps.get(key)).is_some())
                };
                for key in props.keys() {
                    if !visible_elsewhere(key) {
                        obj.remove(key);
                    }
                }
            }
            continue;
        }
        validate(&schema_of_page(page), values)?;
    }
    Ok(kept)
}

/// Validates a task's `secrets` against the template's `spec.secrets.schema`,
/// as Backstage's `validateSecrets` does on create, retry and dry-run: the
/// errors keep the `jsonschema` shape, with `instance` emptied (the values
/// are secret), `property` rooted at `secrets` and a `required` failure
/// worded `secrets.<name> is required`.
pub fn validate_secrets(schema: Option<&Value>, secrets: &Value) -> Result<(), Vec<ParameterError>> {
    let Some(schema) = schema else {
        return Ok(());
    };
    validate(schema, secrets).map_err(|errors| errors.into_iter().map(secret_error).collect())
}

fn secret_error(mut error: Value) -> Value {
    let property = error
        .get("property")
        .and_then(Value::as_str)
        .map(|p| match p.strip_prefix("instance") {
            Some(rest) => format!("secrets{rest}"),
            None => p.to_owned(),
        })
        .unwrap_or_else(|| "secrets".to_owned());
    let message = if error.get("name").and_then(Value::as_str) == Some("required") {
        let name = match error.get("argument") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        format!("secrets.{name} is required")
    } else {
        let message = error.get("message").and_then(Value::as_str).unwrap_or_default();
        format!("{property} {message}")
    };
    if let Some(obj) = error.as_object_mut() {
        obj.insert("property".into(), Value::String(property));
        obj.insert("message".into(), Value::String(message));
        obj.insert("instance".into(), Value::Object(Default::default()));
    }
    error
}

/// The page as a JSON Schema: UI-only keys are harmless to the validator, but
/// `when` is ours and must not be read as a keyword.
fn schema_of_page(page: &Value) -> Value {
    let mut schema = page.clone();
    if let Some(obj) = schema.as_object_mut() {
        obj.remove("when");
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn demo_pages() -> Vec<Value> {
        vec![
            json!({"title": "Component details", "required": ["name", "owner"], "properties": {
                "name": {"title": "Name", "type": "string", "pattern": "^[a-z0-9-]+$", "maxLength": 40},
                "owner": {"title": "Owner", "type": "string"}}}),
            json!({"title": "Options", "properties": {
                "language": {"type": "string", "enum": ["go", "rust", "node"]},
                "seconds": {"type": "number", "minimum": 0, "maximum": 60}}}),
        ]
    }

    #[test]
    fn required_errors_match_the_npm_library() {
        let pages = demo_pages();
        let refs: Vec<&Value> = pages.iter().collect();
        let errors = validate_parameters(&refs, &json!({}), |_| true).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0]["message"], "requires property \"name\"");
        assert_eq!(errors[0]["property"], "instance");
        assert_eq!(errors[0]["path"], json!([]));
        assert_eq!(errors[0]["schema"]["title"], "Component details");
        assert_eq!(errors[0]["stack"], "instance requires property \"name\"");
        assert_eq!(errors[1]["argument"], "owner");
    }

    #[test]
    fn pattern_error_carries_the_property_schema() {
        let pages = demo_pages();
        let refs: Vec<&Value> = pages.iter().collect();
        let errors = validate_parameters(&refs, &json!({"name": "Bad Name", "owner": "x"}), |_| true).unwrap_err();
        assert_eq!(errors.len(), 1);
        let e = &errors[0];
        assert_eq!(e["path"], json!(["name"]));
        assert_eq!(e["property"], "instance.name");
        assert_eq!(e["message"], "does not match pattern \"^[a-z0-9-]+$\"");
        assert_eq!(e["schema"]["maxLength"], 40);
        assert_eq!(e["instance"], "Bad Name");
        assert_eq!(e["name"], "pattern");
        assert_eq!(e["stack"], "instance.name does not match pattern \"^[a-z0-9-]+$\"");
    }

    #[test]
    fn later_pages_are_validated_and_hidden_pages_dropped() {
        let pages = demo_pages();
        let refs: Vec<&Value> = pages.iter().collect();
        let values = json!({"name": "ok", "owner": "x", "language": "cobol"});
        let errors = validate_parameters(&refs, &values, |_| true).unwrap_err();
        assert_eq!(errors[0]["name"], "enum");
        assert_eq!(errors[0]["message"], "is not one of enum values: go,rust,node");

        let kept = validate_parameters(&refs, &values, |p| p["title"] != "Options").unwrap();
        assert_eq!(kept, json!({"name": "ok", "owner": "x"}));
    }

    #[test]
    fn secrets_errors_are_worded_like_backstages_validate_secrets() {
        let schema = json!({"type": "object", "required": ["apiToken"],
            "properties": {"apiToken": {"type": "string", "minLength": 5}}});
        assert!(validate_secrets(None, &json!({})).is_ok());
        assert!(validate_secrets(Some(&schema), &json!({"apiToken": "long-enough"})).is_ok());
        let errors = validate_secrets(Some(&schema), &json!({})).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0]["message"], "secrets.apiToken is required");
        assert_eq!(errors[0]["property"], "secrets");
        assert_eq!(errors[0]["instance"], json!({}));
        assert_eq!(errors[0]["name"], "required");
        assert_eq!(errors[0]["stack"], "instance requires property \"apiToken\"");
        let errors = validate_secrets(Some(&schema), &json!({"apiToken": "abc"})).unwrap_err();
        assert_eq!(errors[0]["property"], "secrets.apiToken");
        assert_eq!(
            errors[0]["message"],
            "secrets.apiToken does not meet minimum length of 5"
        );
        assert_eq!(errors[0]["instance"], json!({}));
    }

    #[test]
    fn numbers_out_of_range() {
        let pages = demo_pages();
        let refs: Vec<&Value> = pages.iter().collect();
        let errors =
            validate_parameters(&refs, &json!({"name": "a", "owner": "b", "seconds": 61}), |_| true).unwrap_err();
        assert_eq!(errors[0]["message"], "must be less than or equal to 60");
        let errors =
            validate_parameters(&refs, &json!({"name": "a", "owner": "b", "seconds": "x"}), |_| true).unwrap_err();
        assert_eq!(errors[0]["message"], "is not of a type(s) number");
    }
}
