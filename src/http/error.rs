//! The one place where errors become HTTP responses, in Backstage's body
//! shape `{error:{name,message}, request:{method,url}, response:{statusCode}}`
//! (or `{errors:[…]}` for parameter validation). Request bodies that do not
//! match their documented schema are worded here too (`ApiError::body_schema`).

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Value};

use crate::service::ServiceError;

/// Where the plugin is mounted; `request.url` in error bodies is relative to it.
pub const MOUNT: &str = "/api/scaffolder";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Unsupported(String),
    /// A request body that is not declared JSON (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Missing or invalid credentials (401).
    #[error("{0}")]
    Unauthenticated(#[from] crate::auth::AuthError),
    /// The caller may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// Over a per-client limit (429).
    #[error("{0}")]
    TooManyRequests(String),
    #[error("invalid parameter values")]
    Validation(Vec<Value>),
    /// A template step failed during a dry-run; Backstage answers with the
    /// error's class (`InputError` 400, `NotFoundError` 404, others 500).
    #[error("{message}")]
    Step { name: String, message: String },
    /// A service we asked failed: Backstage's error handler answers with
    /// the upstream status (octokit's `HttpError`), else 500.
    #[error("{message}")]
    Upstream { status: Option<u16>, message: String },
    /// Logged with its cause; the client sees an opaque message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn name(&self) -> &'static str {
        match self {
            ApiError::Input(_) | ApiError::Validation(_) => "InputError",
            ApiError::NotFound(_) => "NotFoundError",
            ApiError::Conflict(_) => "ConflictError",
            ApiError::PayloadTooLarge(_) => "PayloadTooLargeError",
            ApiError::Unsupported(_) => "NotSupportedError",
            // The name express' body parser gives its 415s.
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaTypeError",
            ApiError::Unauthenticated(_) => "AuthenticationError",
            ApiError::Forbidden(_) => "NotAllowedError",
            ApiError::TooManyRequests(_) => "TooManyRequestsError",
            ApiError::Internal(_) => "Error",
            ApiError::Step { .. } => "Error",
            ApiError::Upstream { .. } => "HttpError",
        }
    }

    fn name_owned(&self) -> String {
        match self {
            ApiError::Step { name, .. } => name.clone(),
            other => other.name().to_owned(),
        }
    }

    /// A body that is not JSON at all (every endpoint words it the same).
    pub fn malformed_json(e: &serde_json::Error) -> ApiError {
        ApiError::Input(format!("request body is not valid JSON: {e}"))
    }

    /// The first violation of a request body's documented schema, worded
    /// as Backstage's OpenAPI request validator (Ajv, first error only)
    /// words it: `request/body<JSON pointer> <message>`.
    pub fn body_schema(error: &jsonschema::ValidationError<'_>) -> ApiError {
        use jsonschema::error::{TypeKind, ValidationErrorKind as K};
        let message = match error.kind() {
            K::Required { property } => format!(
                "must have required property '{}'",
                property.as_str().map_or_else(|| property.to_string(), str::to_owned)
            ),
            K::Type {
                kind: TypeKind::Single(t),
            } => format!("must be {t}"),
            // Ajv words a nullable type (OpenAPI's `nullable: true`, written
            // `type: [object, "null"]` in 3.1) by its non-null types alone.
            K::Type {
                kind: TypeKind::Multiple(types),
            } => {
                let named: Vec<String> = types
                    .iter()
                    .filter(|t| *t != jsonschema::JsonType::Null)
                    .map(|t| t.to_string())
                    .collect();
                format!("must be {}", named.join(","))
            }
            K::AdditionalProperties { .. } => "must NOT have additional properties".to_owned(),
            K::Enum { .. } => "must be equal to one of the allowed values".to_owned(),
            K::Format { format } => format!("must match format \"{format}\""),
            _ => error.to_string(),
        };
        ApiError::Input(format!("request/body{} {message}", error.instance_path().as_str()))
    }

    /// A body its documented schema accepts but its wire type does not: the
    /// two disagree, and serde says where.
    pub fn body_shape(e: &serde_json::Error) -> ApiError {
        ApiError::Input(format!("request/body {e}"))
    }

    fn public_message(&self) -> String {
        match self {
            ApiError::Internal(_) => "An internal error occurred".to_owned(),
            other => other.to_string(),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        match e {
            ServiceError::NotFound(m) => ApiError::NotFound(m),
            ServiceError::Input(m) => ApiError::Input(m),
            ServiceError::Validation(errors) => ApiError::Validation(errors),
            ServiceError::Conflict(m) => ApiError::Conflict(m),
            ServiceError::Forbidden(m) => ApiError::Forbidden(m),
            ServiceError::TooManyRequests(m) => ApiError::TooManyRequests(m),
            ServiceError::Upstream { status, message } => ApiError::Upstream { status, message },
            ServiceError::Internal(m) => ApiError::Internal(m),
            e @ (ServiceError::Store(_)
            | ServiceError::TemplateSource(_)
            | ServiceError::Secrets(_)
            | ServiceError::Version(_)) => ApiError::Internal(e.to_string()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Input(_) | ApiError::Validation(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unsupported(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Upstream { status, .. } => status
                .and_then(|s| StatusCode::from_u16(s).ok())
                .filter(|s| s.is_client_error() || s.is_server_error())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            ApiError::Step { name, .. } => match name.as_str() {
                "InputError" => StatusCode::BAD_REQUEST,
                "AuthenticationError" => StatusCode::UNAUTHORIZED,
                "NotAllowedError" => StatusCode::FORBIDDEN,
                "NotFoundError" => StatusCode::NOT_FOUND,
                "ConflictError" => StatusCode::CONFLICT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// Without the request; `with_request_info` completes the body.
    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(cause) = self {
            tracing::error!(error = %cause, "request failed");
        }
        HttpResponse::build(self.status_code()).json(self.body(None, None))
    }
}

impl ApiError {
    fn body(&self, method: Option<&str>, url: Option<&str>) -> Value {
        if let ApiError::Validation(errors) = self {
            return json!({ "errors": errors });
        }
        let mut body = json!({
            "error": { "name": self.name_owned(), "message": self.public_message() },
            "response": { "statusCode": self.status_code().as_u16() },
        });
        if let (ApiError::Unauthenticated(auth), Some(obj)) = (self, body.as_object_mut()) {
            if let (Some(cause), Some(Value::Object(error))) = (auth.cause(), obj.get_mut("error")) {
                error.insert(
                    "cause".into(),
                    json!({ "name": "AuthenticationError", "message": cause }),
                );
            }
        }
        if let (Some(method), Some(url), Some(obj)) = (method, url, body.as_object_mut()) {
            obj.insert("request".into(), json!({ "method": method, "url": url }));
        }
        body
    }
}

/// Middleware: re-renders `ApiError` responses with the request's method and
/// URL (relative to the mount point), as Backstage's error handler does.
pub async fn with_request_info(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, actix_web::Error> {
    let method = req.method().to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let url = path_and_query.strip_prefix(MOUNT).unwrap_or(&path_and_query).to_owned();
    let res = next.call(req).await?;
    let replacement = match res.response().error() {
        Some(e) => match e.as_error::<ApiError>() {
            Some(api) => Some((api.status_code(), api.body(Some(&method), Some(&url)))),
            // actix's own payload errors (raw bodies over `server.body_limit_bytes`)
            // get Backstage's body too, as express' body parser does.
            None if res.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                let api = ApiError::PayloadTooLarge("request entity too large".into());
                Some((api.status_code(), api.body(Some(&method), Some(&url))))
            }
            None => None,
        },
        None => None,
    };
    match replacement {
        Some((status, body)) => {
            let (req, _) = res.into_parts();
            let mut response = HttpResponse::build(status).json(body);
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            Ok(ServiceResponse::new(req, response).map_into_right_body())
        }
        None => Ok(res.map_into_left_body()),
    }
}

/// Body-parsing failures (malformed JSON, wrong content, too large) as
/// Backstage-shaped 400/413 answers.
pub fn json_error(err: actix_web::error::JsonPayloadError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    let api = match &err {
        J::OverflowKnownLength { length, limit } => {
            ApiError::PayloadTooLarge(format!("request entity too large: {length} bytes, limit {limit}"))
        }
        J::Overflow { limit } => ApiError::PayloadTooLarge(format!("request entity too large, limit {limit} bytes")),
        J::ContentType => ApiError::Input("request body must be JSON (Content-Type: application/json)".into()),
        J::Deserialize(e) => ApiError::malformed_json(e),
        other => ApiError::Input(format!("cannot read request body: {other}")),
    };
    api.into()
}

pub fn query_error(err: actix_web::error::QueryPayloadError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::Input(format!("invalid query string: {err}")).into()
}

pub fn path_error(err: actix_web::error::PathError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::Input(format!("invalid path: {err}")).into()
}
