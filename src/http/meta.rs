//! Templates' parameter schemas, the action list, templating extensions and
//! autocomplete.

use actix_web::{web, HttpResponse};

use super::body::Body;
use super::error::ApiError;
use super::schemas::{
    ActionSchemaEntry, AutocompleteRequestSchema, AutocompleteResponse, ErrorBody, ParameterSchema,
    TemplatingExtensions,
};
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
pub async fn actions(state: web::Data<AppState>, caller: crate::auth::Caller) -> Result<HttpResponse, ApiError> {
    let actions = state.tasks.actions(&caller, &state.actions).await?;
    Ok(HttpResponse::Ok().json(actions))
}

/// Filters and globals available in templates.
#[utoipa::path(
    get, path = "/v2/templating-extensions", tag = "templates", operation_id = "listTemplatingExtensions",
    responses((status = 200, description = "Filters and globals", body = TemplatingExtensions))
)]
pub async fn templating_extensions() -> HttpResponse {
    HttpResponse::Ok().json(crate::templating::templating_extensions())
}

/// Suggestions for form fields, as Backstage's autocomplete handlers give
/// them: `github` (`repositoriesWithOwner`, `branches`, `owners`, with the
/// caller's token), ours, `gitops` (`clusters` of an infra-gitops repository),
/// and any provider a module registered in an action bridge.
#[utoipa::path(
    post, path = "/v2/autocomplete/{provider}/{resource}", tag = "autocomplete", operation_id = "autocomplete",
    params(
        ("provider" = String, Path, description = "`github`, `gitops`, or a provider of an action bridge"),
        ("resource" = String, Path, description = "`repositoriesWithOwner`, `branches`, `owners` (github); `clusters` (gitops)"),
    ),
    request_body(content = AutocompleteRequestSchema, description = "The caller's SCM token and the field's context"),
    responses(
        (status = 200, description = "Suggestions", body = AutocompleteResponse),
        (status = 400, description = "No token, unknown provider or resource, missing context, or no integration for the host", body = ErrorBody),
        (status = 404, description = "The infra-gitops repository or branch does not exist", body = ErrorBody),
        (status = 500, description = "GitHub or an action bridge failed (`HttpError`; GitHub's own status when it answered one)", body = ErrorBody),
    )
)]
pub async fn autocomplete(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: Body<AutocompleteRequestSchema>,
) -> Result<HttpResponse, ApiError> {
    let (provider, resource) = path.into_inner();
    let request = body.0.into();
    let results = state.autocomplete.complete(&provider, &resource, &request).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "results": results })))
}

/// Any other path under the plugin.
pub async fn not_found(req: actix_web::HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "No route for {} {}",
        req.method(),
        req.path()
    )))
}
