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
