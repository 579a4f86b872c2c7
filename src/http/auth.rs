//! The caller's identity: a middleware authenticates every request under the
//! plugin mount (except the OpenAPI document) and stores the [`Caller`] in
//! the request's extensions; handlers take it as an extractor.

use std::future::{ready, Ready};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{AUTHORIZATION, HOST};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};

use super::error::{ApiError, MOUNT};
use super::AppState;
use crate::auth::Caller;

/// Routes anyone may call: health checks and the API description.
fn is_open(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
        || path == format!("{MOUNT}/openapi.json")
        || path == format!("{MOUNT}/.well-known/backstage/permissions/apply-conditions")
        || !path.starts_with(MOUNT)
}

/// Middleware: 401 for missing or invalid credentials, 403 for an anonymous
/// request under a `Host` that is not this machine's (DNS rebinding), else
/// the caller goes into the request's extensions.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(req
            .error_response(ApiError::Internal("no application state".into()))
            .map_into_right_body());
    };
    if is_open(req.path()) {
        // `/metrics` without a token answers anyone, like the anonymous API:
        // it gets the same Host rule while anonymous access is on.
        let open_metrics = req.path() == "/metrics" && state.settings.telemetry.metrics_token.is_none();
        if open_metrics && state.auth.allows_anonymous() {
            if let Err(e) = check_anonymous_host(&req, &state) {
                return Ok(req.error_response(e).map_into_right_body());
            }
        }
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .map(|v| v.to_str().map(str::to_owned).unwrap_or_else(|_| "invalid".into()));
    match state.auth.authenticate(header.as_deref()).await {
        Ok(mut caller) => {
            caller.request_id = req
                .extensions()
                .get::<super::observe::RequestId>()
                .map(|id| id.0.clone());
            if caller.is_anonymous() {
                if let Err(e) = check_anonymous_host(&req, &state) {
                    return Ok(req.error_response(e).map_into_right_body());
                }
            }
            req.extensions_mut().insert(caller);
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(e) => Ok(req.error_response(ApiError::from(e)).map_into_right_body()),
    }
}

/// The `Host` header as the client sent it (the URI's authority on HTTP/2),
/// never `X-Forwarded-Host`: the rule is about the name the browser used.
fn request_host(req: &ServiceRequest) -> Option<String> {
    match req.headers().get(HOST) {
        Some(value) => Some(String::from_utf8_lossy(value.as_bytes()).into_owned()),
        None => req.uri().authority().map(|a| a.as_str().to_owned()),
    }
}

fn check_anonymous_host(req: &ServiceRequest, state: &AppState) -> Result<(), ApiError> {
    let host = request_host(req);
    if state.auth.anonymous_host_allowed(host.as_deref()) {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "Anonymous access is only served to loopback host names (localhost, 127.0.0.1, [::1]), \
         and this request was addressed to Host '{}'. This protects a local server from web pages \
         that reach it through DNS rebinding. To serve this host name anonymously, add it to \
         auth.anonymous_hosts (SCAFFOLDER__AUTH__ANONYMOUS_HOSTS); otherwise configure credentials \
         (auth.tokens or auth.backstage) and set auth.allow_anonymous: false",
        host.unwrap_or_default()
    )))
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
