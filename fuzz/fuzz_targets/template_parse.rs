//! v1beta3 template YAML → the template model and parameter handling: any
//! YAML must load or be refused with an error, and a loaded template must
//! give its steps, task spec, defaults and parameter validation without
//! panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scaffolder::template::{validate_parameters, LoadedTemplate};
use serde_json::{json, Map, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(base) = url::Url::parse("file:///templates/fuzz/template.yaml") else {
        return;
    };
    for document in serde_norway::Deserializer::from_str(text) {
        let Ok(entity) = <Value as serde::Deserialize>::deserialize(document) else {
            return;
        };
        let Ok(template) = LoadedTemplate::from_entity(entity, base.clone(), None) else {
            continue;
        };
        let steps = template.spec.normalized_steps();
        assert_eq!(steps.len(), template.spec.steps.len());
        assert!(steps.iter().all(|s| s.id.is_some() && s.name.is_some()));
        let pages = template.spec.parameter_pages();
        let mut values = Map::new();
        scaffolder::cli::values::apply_defaults(&pages, &mut values);
        let values = Value::Object(values);
        for candidate in [&values, &json!({}), &json!({ "name": 1, "x": [null] })] {
            if let Ok(kept) = validate_parameters(&pages, candidate, |_| true) {
                let _ = template.task_spec(&kept, &json!({}));
            }
            let _ = validate_parameters(&pages, candidate, |_| false);
        }
        let spec = template.task_spec(&values, &json!({ "ref": "user:default/fuzz" }));
        assert_eq!(spec["apiVersion"], scaffolder::template::API_VERSION);
    }
});
