//! Request bodies are JSON or nothing. A browser may send `text/plain`,
//! form-encoded and multipart bodies, or bodies without a type, to any site
//! without asking first (no CORS preflight); refusing every non-empty body
//! that is not declared JSON means such a request never reaches a handler.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use actix_web::http::Method;
use actix_web::middleware::Next;

use super::error::ApiError;

/// Whether a `Content-Type` value declares JSON: `application/json` or any
/// `*/*+json`, with any parameters (`charset=utf-8`), case-insensitively.
pub fn is_json_media_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let token = |s: &str| !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || c == '/');
    token(kind) && token(subtype) && ((kind == "application" && subtype == "json") || subtype.ends_with("+json"))
}

/// Whether the request carries body bytes: a positive `Content-Length`, or a
/// `Transfer-Encoding` (a chunked body of unknown length). `Content-Length: 0`
/// and neither header mean no body.
fn has_body(headers: &HeaderMap) -> bool {
    if headers.contains_key(TRANSFER_ENCODING) {
        return true;
    }
    match headers.get(CONTENT_LENGTH) {
        None => false,
        Some(v) => v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()) != Some(0),
    }
}

/// The refusal for a request whose body is not declared JSON, if it is one.
/// Methods without a body in this API (`GET`, `HEAD`, `OPTIONS`) pass; an
/// empty body passes whatever its type (Backstage's `ScaffolderClient` cancels
/// with a bare `POST`, `curl -d ''` sends a form type), since it carries nothing
/// to interpret.
pub fn refusal(method: &Method, headers: &HeaderMap) -> Option<ApiError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) || !has_body(headers) {
        return None;
    }
    let declared = headers
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    match declared {
        Some(t) if is_json_media_type(&t) => None,
        Some(t) => Some(ApiError::UnsupportedMediaType(format!(
            "Unsupported Content-Type '{t}': request bodies must be JSON (Content-Type: application/json)"
        ))),
        None => Some(ApiError::UnsupportedMediaType(
            "Missing Content-Type: request bodies must be JSON (Content-Type: application/json)".into(),
        )),
    }
}

/// Middleware: 415 for a body that is not declared JSON, before the request
/// is authenticated or routed.
pub async fn require_json(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    match refusal(req.method(), req.headers()) {
        Some(e) => Ok(req.error_response(e).map_into_right_body()),
        None => Ok(next.call(req).await?.map_into_left_body()),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn json_media_types() {
        for t in [
            "application/json",
            "Application/JSON; charset=UTF-8",
            "application/json;charset=utf-8",
            "application/vnd.backstage+json",
            "application/merge-patch+json; charset=utf-8",
        ] {
            assert!(is_json_media_type(t), "{t}");
        }
        for t in [
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "json",
            "application/",
            "/json",
            "text/json+plain",
            "",
        ] {
            assert!(!is_json_media_type(t), "{t}");
        }
    }

    #[test]
    fn only_non_empty_bodies_must_be_declared_json() {
        let post = Method::POST;
        let refused = |h: &[(HeaderName, &str)]| refusal(&post, &headers(h)).is_some();
        assert!(refused(&[(CONTENT_TYPE, "text/plain"), (CONTENT_LENGTH, "2")]));
        assert!(refused(&[(CONTENT_LENGTH, "2")]));
        assert!(refused(&[
            (CONTENT_TYPE, "application/x-www-form-urlencoded"),
            (TRANSFER_ENCODING, "chunked")
        ]));
        assert!(refused(&[(CONTENT_TYPE, "text/plain"), (CONTENT_LENGTH, "nonsense")]));
        assert!(!refused(&[
            (CONTENT_TYPE, "application/json; charset=utf-8"),
            (CONTENT_LENGTH, "2")
        ]));
        assert!(!refused(&[]));
        assert!(!refused(&[(CONTENT_LENGTH, "0")]));
        assert!(!refused(&[
            (CONTENT_TYPE, "application/x-www-form-urlencoded"),
            (CONTENT_LENGTH, "0")
        ]));
        assert!(refusal(
            &Method::GET,
            &headers(&[(CONTENT_TYPE, "text/plain"), (CONTENT_LENGTH, "2")])
        )
        .is_none());
        let e = refusal(&post, &headers(&[(CONTENT_TYPE, "text/plain"), (CONTENT_LENGTH, "2")])).unwrap();
        assert!(e.to_string().contains("text/plain"), "{e}");
    }
}
