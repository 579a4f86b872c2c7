//! `POST /v2/dry-run`.

use actix_web::{web, HttpResponse};
use base64::Engine;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::schemas::{DryRunRequestSchema, DryRunResponse, ErrorBody, ValidationErrors};
use super::AppState;
use crate::service::{DryRunRequest, InlineFile};

/// The body checked as Backstage's OpenAPI validator does.
fn parse(body: &Value) -> Result<DryRunRequest, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::Input("request/body must be object".into()))?;
    for key in ["template", "values", "directoryContents"] {
        if !obj.contains_key(key) {
            return Err(ApiError::Input(format!(
                "request/body must have required property '{key}'"
            )));
        }
    }
    let template = obj["template"].clone();
    if !template.is_object() {
        return Err(ApiError::Input("request/body/template must be object".into()));
    }
    let values = obj["values"].clone();
    if !values.is_object() {
        return Err(ApiError::Input("request/body/values must be object".into()));
    }
    let secrets = match obj.get("secrets") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => {
            if let Some((key, _)) = map.iter().find(|(_, v)| !v.is_string()) {
                return Err(ApiError::Input(format!("request/body/secrets/{key} must be string")));
            }
            map.clone()
        }
        Some(_) => return Err(ApiError::Input("request/body/secrets must be object".into())),
    };
    let entries = obj["directoryContents"]
        .as_array()
        .ok_or_else(|| ApiError::Input("request/body/directoryContents must be array".into()))?;
    let mut files = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let path = entry
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::Input(format!("request/body/directoryContents/{i}/path must be string")))?;
        let content = entry.get("base64Content").and_then(Value::as_str).ok_or_else(|| {
            ApiError::Input(format!(
                "request/body/directoryContents/{i}/base64Content must be string"
            ))
        })?;
        let content = base64::engine::general_purpose::STANDARD.decode(content).map_err(|e| {
            ApiError::Input(format!(
                "request/body/directoryContents/{i}/base64Content is not base64: {e}"
            ))
        })?;
        files.push(InlineFile {
            path: path.to_owned(),
            content,
        });
    }
    Ok(DryRunRequest {
        template,
        values,
        secrets,
        files,
    })
}

/// Run a template without side effects: every action that supports dry-run
/// runs in a scratch workspace; others are skipped with faked outputs.
#[utoipa::path(
    post, path = "/v2/dry-run", tag = "templates", operation_id = "dryRun",
    request_body = DryRunRequestSchema,
    responses(
        (status = 200, description = "The log, the files the template produced, its output and its steps", body = DryRunResponse),
        (status = 400, description = "Malformed request, not a template, invalid values or secrets (`spec.secrets.schema`), or a step failed with an input error", body = ValidationErrors),
        (status = 403, description = "A `directoryContents` path leads outside the template's directory (`NotAllowedError`)", body = ErrorBody),
        (status = 404, description = "A step uses an action that is not installed", body = ErrorBody),
        (status = 500, description = "A step failed", body = ErrorBody),
    )
)]
pub async fn dry_run(state: web::Data<AppState>, body: web::Json<Value>) -> Result<HttpResponse, ApiError> {
    let request = parse(&body)?;
    match state.dry_run.run(request).await? {
        Ok(result) => Ok(HttpResponse::Ok().json(result)),
        Err(failure) => Err(ApiError::Step {
            name: failure.name,
            message: failure.message,
        }),
    }
}
