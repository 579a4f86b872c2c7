//! Templates' parameter schemas, the action list, templating extensions and
//! autocomplete.

use actix_web::{web, HttpResponse};
use serde_json::Value;

use super::error::ApiError;
use super::schemas::{ActionSchemaEntry, ErrorBody, ParameterSchema, TemplatingExtensions};
use super::AppState;

/// The parameter pages of a template, for the form.
#[utoipa::path(
    get, path = "/v2/templates/{namespace}/{kind}/{name}/parameter-schema", tag = "templates",
    operation_id = "getTemplateParameterSchema",
    params(
        ("namespace" = String, Path, description = "Entity namespace"),
        ("kind" = String, Path, description = "Entity kind (`template`)"),
        ("name" = String, Path, description = "Entity name"),
    ),
    responses(
        (status = 200, description = "Title, description and one step per parameter page", body = ParameterSchema),
        (status = 400, description = "Not a template reference", body = ErrorBody),
        (status = 404, description = "Unknown template", body = ErrorBody),
    )
)]
pub async fn parameter_schema(
    state: web::Data<AppState>,
    caller: crate::auth::Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (namespace, kind, name) = path.into_inner();
    let schema = state
        .tasks
        .parameter_schema(&caller, &format!("{kind}:{namespace}/{name}"))
        .await?;
    Ok(HttpResponse::Ok().json(schema))
}

/// Installed actions with their input/output JSON Schemas and examples.
#[utoipa::path(
    get, path = "/v2/actions", tag = "actions", operation_id = "listActions",
    responses((status = 200, description = "Installed actions", body = Vec<ActionSchemaEntry>))
)]
pub async fn actions(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.actions.list())
}

/// Filters and globals available in templates.
#[utoipa::path(
    get, path = "/v2/templating-extensions", tag = "templates", operation_id = "listTemplatingExtensions",
    responses((status = 200, description = "Filters and globals", body = TemplatingExtensions))
)]
pub async fn templating_extensions() -> HttpResponse {
    HttpResponse::Ok().json(crate::templating::templating_extensions())
}

/// Autocompletion for form fields. No provider is installed yet.
#[utoipa::path(
    post, path = "/v2/autocomplete/{provider}/{resource}", tag = "autocomplete", operation_id = "autocomplete",
    params(
        ("provider" = String, Path, description = "Provider id, e.g. `github`"),
        ("resource" = String, Path, description = "Resource, e.g. `repositories`"),
    ),
    request_body(content = Object, description = "`{token, context}`"),
    responses((status = 400, description = "Unsupported provider", body = ErrorBody))
)]
pub async fn autocomplete(
    path: web::Path<(String, String)>,
    _body: Option<web::Json<Value>>,
) -> Result<HttpResponse, ApiError> {
    let (provider, _resource) = path.into_inner();
    Err(ApiError::Input(format!("Unsupported provider: {provider}")))
}

/// Any other path under the plugin.
pub async fn not_found(req: actix_web::HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "No route for {} {}",
        req.method(),
        req.path()
    )))
}
