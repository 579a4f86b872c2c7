//! A fake Backstage catalog: records requests with their bearer token.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct CatalogRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub token: Option<String>,
    pub body: Value,
}

#[derive(Default)]
pub struct CatalogState {
    pub requests: Vec<CatalogRequest>,
    /// Locations already registered (a second registration is a 409).
    pub locations: Vec<String>,
}

pub struct FakeCatalog {
    pub base_url: String,
    pub state: Arc<Mutex<CatalogState>>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for FakeCatalog {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { handle.stop(false).await });
        }
    }
}

impl FakeCatalog {
    pub fn start() -> FakeCatalog {
        let state: Arc<Mutex<CatalogState>> = Arc::default();
        let shared = web::Data::new(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(move || App::new().app_data(shared.clone()).default_service(web::to(handle)))
            .workers(1)
            .disable_signals()
            .listen(listener)
            .expect("listen")
            .run();
        let handle = server.handle();
        tokio::spawn(server);
        FakeCatalog {
            base_url: format!("http://127.0.0.1:{port}/api/catalog"),
            state,
            handle,
        }
    }

    pub fn requests(&self) -> Vec<CatalogRequest> {
        self.state.lock().map(|s| s.requests.clone()).unwrap_or_default()
    }
}

fn entity(kind: &str, name: &str) -> Value {
    json!({"apiVersion": "backstage.io/v1alpha1", "kind": kind, "metadata": {"name": name, "namespace": "default"}})
}

async fn handle(req: HttpRequest, body: web::Bytes, state: web::Data<Arc<Mutex<CatalogState>>>) -> HttpResponse {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let Ok(mut state) = state.lock() else {
        return HttpResponse::InternalServerError().finish();
    };
    let request = CatalogRequest {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        token: token.clone(),
        body: body.clone(),
    };
    state.requests.push(request.clone());
    if token.is_none() {
        return HttpResponse::Unauthorized()
            .json(json!({"error": {"name": "AuthenticationError", "message": "Missing credentials"}}));
    }
    let lower_path = request.path.to_lowercase();
    match (request.method.as_str(), lower_path.as_str()) {
        ("POST", "/api/catalog/locations") => {
            let target = body
                .get("target")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let entities = json!([entity("Location", "generated-abc"), entity("Component", "svc")]);
            if request.query.contains("dryRun=true") {
                return HttpResponse::Created()
                    .json(json!({"location": {"type": "url", "target": target}, "entities": entities}));
            }
            if state.locations.contains(&target) {
                return HttpResponse::Conflict().json(json!({"error": {"name": "ConflictError", "message": format!("Location url:{target} already exists")}}));
            }
            state.locations.push(target.clone());
            HttpResponse::Created()
                .json(json!({"location": {"id": "1", "type": "url", "target": target}, "entities": []}))
        }
        ("GET", "/api/catalog/entities/by-name/component/default/svc") => {
            HttpResponse::Ok().json(entity("Component", "svc"))
        }
        ("POST", "/api/catalog/entities/by-refs") => {
            let refs = body
                .get("entityRefs")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let items: Vec<Value> = refs
                .iter()
                .map(|r| {
                    if r.as_str()
                        .is_some_and(|r| r.eq_ignore_ascii_case("component:default/svc"))
                    {
                        entity("Component", "svc")
                    } else {
                        Value::Null
                    }
                })
                .collect();
            HttpResponse::Ok().json(json!({"items": items}))
        }
        _ => HttpResponse::NotFound().json(json!({"error": {"name": "NotFoundError", "message": "not found"}})),
    }
}
