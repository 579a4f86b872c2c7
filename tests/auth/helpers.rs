//! Test servers (JWKS, catalog, GitHub) as tiny actix apps on 127.0.0.1:0,
//! ES256 keys made in the test, and the scaffolder started with auth on.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use reqwest::StatusCode;
use scaffolder::config::Settings;
use scaffolder::startup::Application;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::common::data::test_data_dir;
pub use crate::common::db::admin_url;

pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An ES256 key pair with its key id.
pub struct TestKey {
    pub kid: String,
    secret: p256::SecretKey,
}

impl TestKey {
    pub fn new(kid: &str) -> TestKey {
        TestKey {
            kid: kid.into(),
            secret: p256::SecretKey::random(&mut rand::rngs::OsRng),
        }
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        let point = self.secret.public_key().to_encoded_point(false);
        json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
            "x": b64url(point.x().expect("x").as_slice()),
            "y": b64url(point.y().expect("y").as_slice()),
        })
    }

    fn encoding_key(&self) -> EncodingKey {
        let pem = self.secret.to_pkcs8_pem(LineEnding::LF).expect("pem");
        EncodingKey::from_ec_pem(pem.as_bytes()).expect("key")
    }

    /// A Backstage user token for `sub`, valid for `ttl` seconds (negative: expired).
    pub fn token(&self, sub: &str, ttl: i64) -> String {
        self.token_with_kid(sub, ttl, &self.kid)
    }

    /// A token for `sub` whose ownership refs (`ent`) are `sub` and `groups`.
    pub fn token_in_groups(&self, sub: &str, groups: &[&str]) -> String {
        let now = chrono::Utc::now().timestamp();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("vnd.backstage.user".into());
        let ent: Vec<&str> = std::iter::once(sub).chain(groups.iter().copied()).collect();
        let claims = json!({
            "iss": "http://backstage.test/api/auth", "aud": "backstage", "sub": sub,
            "ent": ent, "iat": now, "exp": now + 600,
        });
        jsonwebtoken::encode(&header, &claims, &self.encoding_key()).expect("token")
    }

    pub fn token_with_kid(&self, sub: &str, ttl: i64, kid: &str) -> String {
        let now = chrono::Utc::now().timestamp();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        header.typ = Some("vnd.backstage.user".into());
        let claims = json!({
            "iss": "http://backstage.test/api/auth", "aud": "backstage", "sub": sub,
            "ent": [sub, "group:default/team-a"], "iat": now, "exp": now + ttl,
        });
        jsonwebtoken::encode(&header, &claims, &self.encoding_key()).expect("token")
    }
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub authorization: Option<String>,
}

/// A server answering `GET <path>` with fixed JSON bodies (the query is
/// ignored); unknown paths get 404. Routes can change while it runs.
pub struct FakeServer {
    pub url: String,
    pub routes: Arc<Mutex<HashMap<String, Value>>>,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { handle.stop(false).await });
        }
    }
}

struct FakeState {
    routes: Arc<Mutex<HashMap<String, Value>>>,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

async fn fake_handler(req: HttpRequest, state: web::Data<FakeState>) -> HttpResponse {
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let path = percent_encoding::percent_decode_str(req.path())
        .decode_utf8_lossy()
        .into_owned();
    state.requests.lock().expect("lock").push(Recorded {
        path: path.clone(),
        authorization,
    });
    let body = state.routes.lock().expect("lock").get(&path).cloned();
    match body {
        Some(body) => HttpResponse::Ok().json(body),
        None => HttpResponse::NotFound().json(json!({"error": {"name": "NotFoundError", "message": "nope"}})),
    }
}

impl FakeServer {
    pub fn start(routes: HashMap<String, Value>) -> FakeServer {
        let routes = Arc::new(Mutex::new(routes));
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let data = web::Data::new(FakeState {
            routes: routes.clone(),
            requests: requests.clone(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(fake_handler)))
            .workers(1)
            .listen(listener)
            .expect("listen")
            .disable_signals()
            .run();
        let handle = server.handle();
        tokio::spawn(server);
        FakeServer {
            url: format!("http://127.0.0.1:{port}"),
            routes,
            requests,
            handle,
        }
    }

    pub fn set(&self, path: &str, body: Value) {
        self.routes.lock().expect("lock").insert(path.into(), body);
    }

    pub fn hits(&self, path: &str) -> usize {
        self.requests
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }
}

pub const JWKS_PATH: &str = "/api/auth/.well-known/jwks.json";

/// A Backstage auth backend serving the JWKS of `keys`.
pub fn jwks_server(keys: &[&TestKey]) -> FakeServer {
    let server = FakeServer::start(HashMap::new());
    server.set(
        JWKS_PATH,
        json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() }),
    );
    server
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub shutdown: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Test defaults: loopback on a random port, a fresh database, the compat templates.
pub fn test_settings() -> Settings {
    let mut settings = Settings::default();
    let db_name = format!("scaffolder_test_{}", uuid::Uuid::new_v4().simple());
    settings.database.url = format!("{}/{db_name}", admin_url()).into();
    settings.database.max_connections = 5;
    settings.server.bind = "127.0.0.1:0".into();
    settings.templates.dirs = vec![test_data_dir().join("compat-templates")];
    settings.worker.heartbeat_seconds = 1;
    settings.worker.lease_seconds = 5;
    settings.server.long_poll_seconds = 1;
    settings
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        scaffolder::telemetry::init(&scaffolder::config::LogSettings {
            format: scaffolder::config::LogFormat::Pretty,
            level: "info,scaffolder=debug".into(),
        });
    }
    let mut settings = test_settings();
    configure(&mut settings);
    let app = Application::build(settings).await.expect("application starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_token();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        shutdown,
    }
}

impl TestApp {
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/scaffolder{path}", self.address)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.client.get(self.api(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
        let mut req = self.client.post(self.api(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Creates a task and returns its id.
    pub async fn create(&self, token: Option<&str>, template: &str, values: Value) -> String {
        let (status, body) = self
            .post("/v2/tasks", token, &json!({"templateRef": template, "values": values}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("id").to_owned()
    }

    /// Polls the task (as `token`) until it has finished.
    pub async fn wait_finished(&self, id: &str, token: Option<&str>) -> Value {
        let deadline = tokio::time::Instant::now() + crate::common::PATIENCE;
        loop {
            let (status, task) = self.get(&format!("/v2/tasks/{id}"), token).await;
            assert_eq!(status, StatusCode::OK, "{task}");
            if matches!(task["status"].as_str(), Some("completed" | "failed" | "cancelled")) {
                return task;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "task {id} did not finish: {task}"
            );
            // Long-poll the event log instead of sleeping.
            let _ = self.get(&format!("/v2/tasks/{id}/events?after=999999"), token).await;
        }
    }
}
