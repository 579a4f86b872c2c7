//! `/v2/promotions`: start a promotion (a task of the built-in promotion
//! template) and read the history.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::body::Body;
use super::error::ApiError;
use super::schemas::{CreatePromotionRequest, ErrorBody, PromotionList, TaskIdResponse, ValidationErrors};
use super::AppState;
use crate::auth::Caller;

/// Promote a bundle of signed image digests into a stage of infra-gitops.
#[utoipa::path(
    post, path = "/v2/promotions", tag = "promotions", operation_id = "createPromotion",
    request_body = CreatePromotionRequest,
    responses(
        (status = 201, description = "Promotion task created; follow it as any task", body = TaskIdResponse),
        (status = 400, description = "Malformed request", body = ValidationErrors),
        (status = 403, description = "The caller may not promote (a ref or workflow file not configured, or not a CI caller or operator)", body = ErrorBody),
        (status = 409, description = "Promotion is not configured", body = ErrorBody),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body<CreatePromotionRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = state.promotions.create(&caller, body.0.into()).await?;
    Ok(HttpResponse::Created().json(json!({ "id": id })))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this service's promotions.
    service: Option<String>,
    /// Only promotions into this stage.
    stage: Option<String>,
    /// At most this many (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// The promotions the caller may see, newest first: which bundle went where,
/// from which commit and workflow run, when, with the commit and pull
/// request links; rollbacks are marked.
#[utoipa::path(
    get, path = "/v2/promotions", tag = "promotions", operation_id = "listPromotions",
    params(ListParams),
    responses(
        (status = 200, description = "Promotions, newest first", body = PromotionList),
        (status = 400, description = "Malformed query", body = ErrorBody),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let promotions = state
        .promotions
        .list(&caller, query.service.as_deref(), query.stage.as_deref(), limit)
        .await?;
    Ok(HttpResponse::Ok().json(PromotionList { promotions }))
}
