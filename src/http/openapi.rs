//! The OpenAPI 3.1 document, generated from the handlers' annotations.
//! `openapi/openapi.yaml` is this document; a test fails when it is stale.

use actix_web::HttpResponse;
use utoipa::OpenApi;

use super::{dry_run, events, governance, health, meta, metrics, promotions, schemas, tasks, updates};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Scaffolder API",
        description = "A Backstage-compatible scaffolder backend: the `/api/scaffolder/v2` API of Backstage's scaffolder plugin (4.3), served from Rust with tasks kept in PostgreSQL.",
        version = "0.1.0",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "/api/scaffolder", description = "Scaffolder plugin mount")),
    paths(
        tasks::create, tasks::list, tasks::get, tasks::cancel, tasks::retry,
        governance::approve, governance::reject, governance::audit, governance::apply_conditions,
        events::events, events::eventstream,
        dry_run::dry_run, meta::parameter_schema, meta::actions, meta::templating_extensions, meta::autocomplete,
        updates::start, updates::get, updates::cancel, updates::retry,
        promotions::create, promotions::list,
    ),
    components(schemas(
        schemas::TaskIdResponse, schemas::CreateTaskRequest, schemas::RetryRequest, schemas::TaskSchema,
        schemas::TaskList, schemas::CancelResponse, schemas::EventSchema, schemas::ErrorBody,
        schemas::ValidationErrors, schemas::ParameterSchema, schemas::ActionSchemaEntry,
        schemas::TemplatingExtensions, schemas::HealthStatus, schemas::DryRunRequestSchema,
        schemas::DryRunResponse, schemas::TaskEventFrame, schemas::AutocompleteRequestSchema,
        schemas::AutocompleteResponse, schemas::AutocompleteSuggestion,
        schemas::StartUpdateRequest, schemas::UpdateRunSchema, schemas::UpdateItemSchema,
        schemas::UpdateProgressSchema, crate::model::UpdateStatus, crate::model::UpdateRunStatus,
        schemas::AutocompleteResponse, schemas::AutocompleteSuggestion, schemas::DecisionRequest,
        schemas::DecisionResponse, schemas::AuditList, schemas::ApplyConditionsRequest, schemas::ApplyConditionsItem,
        schemas::CreatePromotionRequest, schemas::PromotionBundle, schemas::PromotionImage, schemas::PromotionStage,
        schemas::PromotionList, crate::service::PromotionRecord,
    )),
    tags(
        (name = "tasks", description = "Scaffolder tasks and their events"),
        (name = "templates", description = "Templates and templating"),
        (name = "actions", description = "Installed actions"),
        (name = "autocomplete", description = "Form autocompletion"),
        (name = "updates", description = "Template updates of generated repositories"),
        (name = "approvals", description = "Approval gates (`approval:wait`)"),
        (name = "audit", description = "The audit trail (administrators only)"),
        (name = "permissions", description = "Backstage's permission integration for the scaffolder's resource types"),
        (name = "promotions", description = "Signed images promoted through infra-gitops"),
    )
)]
struct ApiDoc;

/// Health and metrics endpoints live outside the plugin mount.
#[derive(OpenApi)]
#[openapi(paths(health::healthz, health::readyz, metrics::metrics))]
struct HealthDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let mut health = HealthDoc::openapi();
    // Paths are relative to the server URL; health and metrics endpoints are at the root,
    // so they get their own server entry.
    for (_, item) in health.paths.paths.iter_mut() {
        item.servers = Some(vec![utoipa::openapi::server::Server::new("/")]);
    }
    for (path, item) in health.paths.paths.iter_mut() {
        if path == "/metrics" {
            add_refusals(item);
        }
    }
    for item in doc.paths.paths.values_mut() {
        add_refusals(item);
        optional_bodies_as_their_schema(item);
    }
    doc.paths.paths.extend(health.paths.paths);
    doc
}

/// The answers the middleware gives before any handler runs, on every
/// operation they apply to: 403 for anonymous requests under a foreign
/// `Host` (`http::auth`), 415 for bodies not declared JSON
/// (`http::content_type`).
fn add_refusals(item: &mut utoipa::openapi::PathItem) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    let operations = [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
    ];
    for operation in operations.into_iter().flatten() {
        operation.responses.responses.entry("403".into()).or_insert_with(|| {
            error("Anonymous access is on and the request's `Host` is not a loopback name nor listed in `auth.anonymous_hosts`")
        });
        if operation.request_body.is_some() {
            operation.responses.responses.entry("415".into()).or_insert_with(|| {
                error("The request has a body that is not declared JSON (`Content-Type: application/json`)")
            });
        }
    }
}

/// An optional body (`request_body(content = Option<T>)`) is described by
/// `T`, not `oneOf: [null, T]`: it may be absent (`required` is not set), but
/// a JSON `null` is refused like any other body that is not `T`
/// (`http::body::OptionalBody`).
fn optional_bodies_as_their_schema(item: &mut utoipa::openapi::PathItem) {
    use utoipa::openapi::{RefOr, Schema};
    let operations = [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
    ];
    let bodies = operations
        .into_iter()
        .flatten()
        .filter_map(|op| op.request_body.as_mut())
        .filter(|body| body.required.is_none());
    for body in bodies {
        for content in body.content.values_mut() {
            let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else {
                continue;
            };
            let mut refs = one_of.items.iter().filter(|s| matches!(s, RefOr::Ref(_)));
            if let (Some(only), None, 2) = (refs.next(), refs.next(), one_of.items.len()) {
                content.schema = Some(only.clone());
            }
        }
    }
}

pub fn yaml() -> String {
    document().to_yaml().unwrap_or_default()
}

pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(document())
}
