//! `fetch:*` actions: copy a directory or a file from beside the template into
//! the workspace, plain or rendered with the template values.
//!
//! Sources are located by [`resolve_fetch_url`]; remote sources are not
//! available yet, so that function is the one place to extend for them.

mod binary;
mod copy;
mod plain;
mod plain_file;
mod source;
mod template;
mod template_file;

use schemars::gen::SchemaGenerator;
use schemars::schema::{InstanceType, ObjectValidation, Schema, SchemaObject, SingleOrVec};
use serde_json::{Map, Value};

use crate::templating::{RenderOptions, Renderer};

pub use plain::FetchPlain;
pub use plain_file::FetchPlainFile;
pub use source::{resolve_fetch_url, FetchLocation};
pub use template::FetchTemplate;
pub use template_file::FetchTemplateFile;

/// `values`: any object (Backstage's `{"type": "object", "additionalProperties": {}}`).
fn values_schema(_: &mut SchemaGenerator) -> Schema {
    SchemaObject {
        instance_type: Some(InstanceType::Object.into()),
        object: Some(Box::new(ObjectValidation {
            additional_properties: Some(Box::new(Schema::Object(SchemaObject::default()))),
            ..Default::default()
        })),
        ..Default::default()
    }
    .into()
}

/// `templateFileExtension`: `{"type": ["string", "boolean"]}`.
fn string_or_bool_schema(_: &mut SchemaGenerator) -> Schema {
    SchemaObject {
        instance_type: Some(SingleOrVec::Vec(vec![InstanceType::String, InstanceType::Boolean])),
        ..Default::default()
    }
    .into()
}

/// The rendering context of template files: the values under `values`, or
/// under `cookiecutter` in cookiecutter compatibility mode (as Backstage).
fn render_context(values: Option<&Map<String, Value>>, cookiecutter_compat: bool) -> Value {
    let key = if cookiecutter_compat { "cookiecutter" } else { "values" };
    let mut context = Map::new();
    if let Some(values) = values {
        context.insert(key.to_string(), Value::Object(values.clone()));
    }
    Value::Object(context)
}

/// Backstage logs the values as winston metadata, which prints as JSON after
/// the message.
fn with_values(message: &str, values: Option<&Map<String, Value>>) -> String {
    match values.and_then(|v| serde_json::to_string(v).ok()) {
        Some(json) => format!("{message} {json}"),
        None => message.to_string(),
    }
}

fn renderer(cookiecutter_compat: bool, trim_blocks: bool, lstrip_blocks: bool) -> Renderer {
    Renderer::with_options(RenderOptions {
        cookiecutter_compat,
        trim_blocks,
        lstrip_blocks,
    })
}

#[cfg(test)]
mod tests {
    use crate::actions::workspace::testing::assert_matches_backstage;

    #[test]
    fn fetch_actions_match_backstages_listing_and_their_examples_parse() {
        assert_matches_backstage(&super::FetchTemplate);
        assert_matches_backstage(&super::FetchTemplateFile);
        assert_matches_backstage(&super::FetchPlain);
        assert_matches_backstage(&super::FetchPlainFile);
    }
}
