//! The caller's identity: a middleware authenticates every request under the
//! plugin mount (except the OpenAPI document) and stores the [`Caller`] in
//! the request's extensions; handlers take it as an extractor.

use std::future::{ready, Ready};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};

use super::error::{ApiError, MOUNT};
use super::AppState;
use crate::auth::Caller;

/// Routes anyone may call: health checks and the API description.
fn is_open(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz") || path == format!("{MOUNT}/openapi.json") || !path.starts_with(MOUNT)
}

/// Middleware: 401 for missing or invalid credentials, else the caller goes
/// into the request's extensions.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if is_open(req.path()) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(req
            .error_response(ApiError::Internal("no application state".into()))
            .map_into_right_body());
    };
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .map(|v| v.to_str().map(str::to_owned).unwrap_or_else(|_| "invalid".into()));
    match state.auth.authenticate(header.as_deref()).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(e) => Ok(req.error_response(ApiError::from(e)).map_into_right_body()),
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Without the middleware (open routes) nobody was authenticated; a
        // handler asking for a caller there gets a 401, never "anonymous".
        ready(
            req.extensions()
                .get::<Caller>()
                .cloned()
                .ok_or(ApiError::Unauthenticated(crate::auth::AuthError::Missing)),
        )
    }
}
