//! Request bodies: read as JSON, checked against the schema the OpenAPI
//! document shows for the operation, then deserialized into that wire type
//! (`http::schemas`). The document is the validator: a body it describes is
//! accepted, any other gets Backstage's `request/body…` error.

use std::collections::HashMap;
use std::sync::OnceLock;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use utoipa::openapi::{OpenApi, RefOr};
use utoipa::ToSchema;

use super::error::ApiError;

/// A required JSON body of wire type `T`. Not JSON: 400 (`JsonConfig`'s
/// handler); too large: 413; not what the document says: 400.
pub struct Body<T>(pub T);

/// An optional JSON body of wire type `T`: no bytes (or only whitespace) is
/// `None`; anything else must be what the document says.
pub struct OptionalBody<T>(pub Option<T>);

impl<T: DeserializeOwned + ToSchema + 'static> FromRequest for Body<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = web::Json::<Value>::from_request(req, payload);
        Box::pin(async move {
            let value = json.await?.into_inner();
            Ok(Body(parse(value)?))
        })
    }
}

impl<T: DeserializeOwned + ToSchema + 'static> FromRequest for OptionalBody<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalBody(None));
            }
            let value: Value = serde_json::from_slice(&bytes).map_err(|e| ApiError::malformed_json(&e))?;
            Ok(OptionalBody(Some(parse(value)?)))
        })
    }
}

/// `value` checked against the document's schema named `T::name()`, then
/// deserialized.
pub fn parse<T: DeserializeOwned + ToSchema>(value: Value) -> Result<T, ApiError> {
    let name = T::name();
    let validators = validators().as_ref().map_err(|e| ApiError::Internal(e.clone()))?;
    let (validator, location) = validators
        .bodies
        .get(name.as_ref())
        .ok_or_else(|| ApiError::Internal(format!("no operation of the OpenAPI document takes a {name} body")))?;
    if !validator.is_valid(&value) {
        // The first violation in the order the schema lists its keywords
        // (the crate checks cheap keywords first).
        let start = json!({ "$ref": location });
        let errors =
            crate::validation::in_schema_order(&validators.document, &start, validator.iter_errors(&value).collect());
        if let Some(error) = errors.first() {
            return Err(ApiError::body_schema(error));
        }
    }
    serde_json::from_value(value).map_err(|e| ApiError::body_shape(&e))
}

/// One validator per body schema, with the `$ref` it starts at, and the
/// document (`{"components": …}`) those references resolve in.
struct Validators {
    document: Value,
    bodies: HashMap<String, (jsonschema::Validator, String)>,
}

fn validators() -> &'static Result<Validators, String> {
    static VALIDATORS: OnceLock<Result<Validators, String>> = OnceLock::new();
    VALIDATORS.get_or_init(|| compile(&super::openapi::document()))
}

/// One validator per request body of `doc`, keyed by the name of the schema
/// component the body refers to; `$ref`s resolve inside the document's
/// components, as OpenAPI 3.1 (JSON Schema 2020-12) reads them.
fn compile(doc: &OpenApi) -> Result<Validators, String> {
    let components = serde_json::to_value(&doc.components).map_err(|e| e.to_string())?;
    let mut bodies = HashMap::new();
    for (path, item) in doc.paths.paths.iter() {
        let operations = [&item.get, &item.post, &item.put, &item.patch, &item.delete];
        for body in operations
            .into_iter()
            .flatten()
            .filter_map(|op| op.request_body.as_ref())
        {
            for content in body.content.values() {
                let Some(RefOr::Ref(reference)) = &content.schema else {
                    return Err(format!("the request body of {path} is not a schema component"));
                };
                let location = &reference.ref_location;
                let name = location.rsplit('/').next().unwrap_or(location);
                let root = json!({ "components": components, "$ref": location });
                let validator = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .build(&root)
                    .map_err(|e| format!("the schema {name} does not compile: {e}"))?;
                bodies.insert(name.to_owned(), (validator, location.clone()));
            }
        }
    }
    let document = json!({ "components": components });
    Ok(Validators { document, bodies })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::http::schemas::{AutocompleteRequestSchema, CreateTaskRequest, DryRunRequestSchema, RetryRequest};

    fn message<T: DeserializeOwned + ToSchema>(value: Value) -> String {
        match parse::<T>(value) {
            Ok(_) => "accepted".to_owned(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn promotion_bodies_are_checked_by_their_schema() {
        use crate::http::schemas::CreatePromotionRequest;
        let body = |digest: &str| json!({"service": "web", "stage": "dev", "bundle": {"images": [{"name": "ghcr.io/acme/web", "digest": digest}]}});
        assert_eq!(
            message::<CreatePromotionRequest>(body(&format!("sha256:{}", "a".repeat(64)))),
            "accepted"
        );
        let refused = message::<CreatePromotionRequest>(body("latest"));
        assert!(
            refused.contains("digest") && refused.contains("does not match"),
            "{refused}"
        );
        let refused =
            message::<CreatePromotionRequest>(json!({"service": "web", "stage": "qa", "bundle": {"images": []}}));
        assert_ne!(refused, "accepted");
    }

    #[test]
    fn every_request_body_of_the_document_compiles() {
        let validators = validators().as_ref().expect("document's body schemas compile");
        let mut names: Vec<&str> = validators.bodies.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "ApplyConditionsRequest",
                "AutocompleteRequest",
                "CreatePromotionRequest",
                "CreateTaskRequest",
                "DecisionRequest",
                "DryRunRequest",
                "RetryRequest",
                "StartUpdateRequest"
            ]
        );
    }

    #[test]
    fn create_body_errors_are_backstages() {
        let msg = message::<CreateTaskRequest>;
        assert_eq!(
            msg(json!({"values": {}})),
            "request/body must have required property 'templateRef'"
        );
        assert_eq!(
            msg(json!({"templateRef": "x"})),
            "request/body must have required property 'values'"
        );
        // Ajv checks `required` before `properties`.
        assert_eq!(
            msg(json!({"templateRef": 1})),
            "request/body must have required property 'values'"
        );
        assert_eq!(
            msg(json!({"templateRef": 1, "values": {}})),
            "request/body/templateRef must be string"
        );
        assert_eq!(
            msg(json!({"templateRef": "x", "values": []})),
            "request/body/values must be object"
        );
        // Of several wrong properties, the first the schema declares, not
        // the first of the body.
        assert_eq!(
            msg(json!({"secrets": 1, "values": [], "templateRef": []})),
            "request/body/templateRef must be string"
        );
        assert_eq!(msg(json!([])), "request/body must be object");
        assert_eq!(msg(json!(null)), "request/body must be object");
        assert_eq!(
            msg(json!({"templateRef": "x", "values": {}, "secrets": {"a": 1}})),
            "request/body/secrets/a must be string"
        );
        assert_eq!(
            msg(json!({"templateRef": "x", "values": {}, "secrets": []})),
            "request/body/secrets must be object"
        );
        assert_eq!(
            msg(json!({"templateRef": "x", "values": {}, "secrets": null})),
            "accepted"
        );
        assert_eq!(msg(json!({"templateRef": "x", "values": {}, "other": 1})), "accepted");
    }

    #[test]
    fn secrets_keep_the_order_they_were_sent_in() {
        let request: CreateTaskRequest =
            parse(json!({"templateRef": "x", "values": {}, "secrets": {"z": "1", "a": "2"}})).expect("valid");
        let keys: Vec<String> = request
            .secrets
            .map(|s| s.0.keys().cloned().collect())
            .unwrap_or_default();
        assert_eq!(keys, ["z", "a"]);
    }

    #[test]
    fn dry_run_body_errors_are_backstages() {
        let msg = message::<DryRunRequestSchema>;
        assert_eq!(
            msg(json!({"template": {}})),
            "request/body must have required property 'values'"
        );
        assert_eq!(
            msg(json!({"template": {}, "values": {}})),
            "request/body must have required property 'directoryContents'"
        );
        assert_eq!(
            msg(json!({"template": "t", "values": {}, "directoryContents": []})),
            "request/body/template must be object"
        );
        assert_eq!(
            msg(json!({"template": {}, "values": {}, "directoryContents": {}})),
            "request/body/directoryContents must be array"
        );
        assert_eq!(
            msg(json!({"template": {}, "values": {}, "directoryContents": [{"path": "a", "base64Content": 1}]})),
            "request/body/directoryContents/0/base64Content must be string"
        );
        assert_eq!(
            msg(json!({"template": {}, "values": {}, "directoryContents": [{"path": "a"}]})),
            "request/body/directoryContents/0 must have required property 'base64Content'"
        );
    }

    #[test]
    fn autocomplete_and_retry_body_errors_are_backstages() {
        let msg = message::<AutocompleteRequestSchema>;
        assert_eq!(msg(json!({})), "request/body must have required property 'context'");
        assert_eq!(
            msg(json!({"context": {}})),
            "request/body must have required property 'token'"
        );
        assert_eq!(
            msg(json!({"context": {"a": 1}, "token": "t"})),
            "request/body/context/a must be string"
        );
        assert_eq!(
            msg(json!({"context": {}, "token": 1})),
            "request/body/token must be string"
        );
        let msg = message::<RetryRequest>;
        assert_eq!(msg(json!({})), "accepted");
        assert_eq!(msg(json!([1])), "request/body must be object");
        assert_eq!(
            msg(json!({"secrets": {"a": true}})),
            "request/body/secrets/a must be string"
        );
    }
}
