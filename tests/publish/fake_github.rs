//! A fake GitHub REST API (the endpoints publishing calls) on 127.0.0.1:0.
//! Created repositories are real bare repositories under a temporary
//! directory, and their `clone_url` is a `file://` URL to them. Failures
//! (rate limits, 5xx…) can be scripted per request.

use std::collections::{BTreeMap, HashSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

use crate::publish::helpers::bare_repo;

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

/// One scripted answer: the next `times` requests matching `method` and
/// ending with `path_suffix` get `status` with `headers` and `body`.
pub struct Failure {
    pub method: &'static str,
    pub path_suffix: String,
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
    pub times: usize,
}

#[derive(Default)]
pub struct State {
    pub repos: BTreeMap<String, Value>,
    pub topics: BTreeMap<String, Vec<String>>,
    pub collaborators: BTreeMap<String, Vec<(String, String)>>,
    pub teams: BTreeMap<String, Vec<(String, String)>>,
    pub protection: BTreeMap<String, Value>,
    pub pulls: BTreeMap<String, Vec<Value>>,
    pub reviewers: BTreeMap<String, Value>,
    pub requests: Vec<Recorded>,
    pub failures: Vec<Failure>,
    pub orgs: HashSet<String>,
}

pub struct FakeGithub {
    pub api_base: String,
    pub root: PathBuf,
    pub state: Arc<Mutex<State>>,
    _dir: tempfile::TempDir,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // Stopping is asynchronous; the runtime may already be gone.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { handle.stop(false).await });
        }
    }
}

struct Shared {
    state: Arc<Mutex<State>>,
    root: PathBuf,
    token: Option<String>,
}

impl FakeGithub {
    /// Starts the fake; `token`, when set, is required on every request.
    pub fn start(token: Option<&str>) -> FakeGithub {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("repos");
        std::fs::create_dir_all(&root).expect("root");
        let state: Arc<Mutex<State>> = Arc::default();
        if let Ok(mut s) = state.lock() {
            s.orgs.insert("acme".into());
        }
        let shared = web::Data::new(Shared {
            state: state.clone(),
            root: root.clone(),
            token: token.map(str::to_owned),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .app_data(web::PayloadConfig::new(10 * 1024 * 1024))
                .default_service(web::to(handle))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        FakeGithub {
            api_base: format!("http://127.0.0.1:{port}/api/v3"),
            root,
            state,
            _dir: dir,
            handle,
        }
    }

    pub fn fail(&self, failure: Failure) {
        if let Ok(mut s) = self.state.lock() {
            s.failures.push(failure);
        }
    }

    pub fn requests(&self, method: &str, path_suffix: &str) -> Vec<Recorded> {
        self.state
            .lock()
            .map(|s| {
                s.requests
                    .iter()
                    .filter(|r| r.method == method && r.path.ends_with(path_suffix))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn bare(&self, owner: &str, repo: &str) -> PathBuf {
        self.root.join(owner).join(format!("{repo}.git"))
    }

    /// Registers an existing repository (as if created outside the test).
    pub fn add_repo(&self, owner: &str, repo: &str, with_commit: bool) {
        let path = self.bare(owner, repo);
        bare_repo(&path, with_commit);
        if let Ok(mut s) = self.state.lock() {
            s.repos.insert(format!("{owner}/{repo}"), repo_json(owner, repo, &path));
        }
    }
}

fn repo_json(owner: &str, repo: &str, path: &Path) -> Value {
    json!({
        "name": repo,
        "full_name": format!("{owner}/{repo}"),
        "clone_url": format!("file://{}", path.display()),
        "html_url": format!("https://github.example/{owner}/{repo}"),
        "default_branch": "main",
    })
}

fn answer(status: u16, body: Value) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::IM_A_TEAPOT);
    HttpResponse::build(status).json(body)
}

fn not_found() -> HttpResponse {
    answer(404, json!({"message": "Not Found"}))
}

async fn handle(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let method = req.method().as_str().to_owned();
    let path = req.path().to_owned();
    let query = req.query_string().to_owned();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Ok(mut state) = shared.state.lock() else {
        return answer(500, json!({"message": "poisoned"}));
    };
    state.requests.push(Recorded {
        method: method.clone(),
        path: path.clone(),
        authorization: authorization.clone(),
        body: body.clone(),
    });
    if let Some(index) = state
        .failures
        .iter()
        .position(|f| f.method == method && path.ends_with(&f.path_suffix) && f.times > 0)
    {
        let failure = &mut state.failures[index];
        failure.times -= 1;
        let status = actix_web::http::StatusCode::from_u16(failure.status).unwrap_or_default();
        let mut response = HttpResponse::build(status);
        for (k, v) in &failure.headers {
            response.insert_header((*k, v.clone()));
        }
        return response.json(failure.body.clone());
    }
    if let Some(token) = &shared.token {
        if authorization.as_deref() != Some(&format!("Bearer {token}")) {
            return answer(401, json!({"message": "Bad credentials"}));
        }
    }
    let Some(rest) = path.strip_prefix("/api/v3/") else {
        return not_found();
    };
    let seg: Vec<String> = rest
        .split('/')
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let seg: Vec<&str> = seg.iter().map(String::as_str).collect();
    match (method.as_str(), seg.as_slice()) {
        ("GET", ["users", owner]) => {
            let kind = if state.orgs.contains(*owner) {
                "Organization"
            } else {
                "User"
            };
            answer(200, json!({"login": owner, "type": kind}))
        }
        ("POST", ["orgs", _, "repos"]) | ("POST", ["user", "repos"]) => {
            let owner = if seg[0] == "orgs" {
                owner_of(&seg)
            } else {
                "me".to_owned()
            };
            let Some(name) = body.get("name").and_then(Value::as_str) else {
                return answer(422, json!({"message": "name is missing"}));
            };
            let key = format!("{owner}/{name}");
            if state.repos.contains_key(&key) {
                return answer(
                    422,
                    json!({"message": "Repository creation failed.", "errors": [{"resource": "Repository", "code": "custom", "field": "name", "message": "name already exists on this account"}]}),
                );
            }
            let path = shared.root.join(&owner).join(format!("{name}.git"));
            bare_repo(&path, false);
            let mut repo = repo_json(&owner, name, &path);
            repo["private"] = body.get("private").cloned().unwrap_or(Value::Null);
            repo["visibility"] = body.get("visibility").cloned().unwrap_or(Value::Null);
            repo["description"] = body.get("description").cloned().unwrap_or(Value::Null);
            state.repos.insert(key, repo.clone());
            answer(201, repo)
        }
        ("GET", ["repos", owner, repo]) => match state.repos.get(&format!("{owner}/{repo}")) {
            Some(r) => answer(200, r.clone()),
            None => not_found(),
        },
        (_, ["repos", owner, repo, ..]) if !state.repos.contains_key(&format!("{owner}/{repo}")) => not_found(),
        ("PUT", ["repos", owner, repo, "topics"]) => {
            let names: Vec<String> = body
                .get("names")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            state.topics.insert(format!("{owner}/{repo}"), names.clone());
            answer(200, json!({"names": names}))
        }
        ("PUT", ["repos", owner, repo, "collaborators", user]) => {
            let permission = body
                .get("permission")
                .and_then(Value::as_str)
                .unwrap_or("push")
                .to_owned();
            state
                .collaborators
                .entry(format!("{owner}/{repo}"))
                .or_default()
                .push((user.to_string(), permission));
            answer(201, json!({}))
        }
        ("PUT", ["orgs", _org, "teams", team, "repos", owner, repo]) => {
            let permission = body
                .get("permission")
                .and_then(Value::as_str)
                .unwrap_or("push")
                .to_owned();
            state
                .teams
                .entry(format!("{owner}/{repo}"))
                .or_default()
                .push((team.to_string(), permission));
            HttpResponse::NoContent().finish()
        }
        ("PUT", ["repos", owner, repo, "branches", branch, "protection"]) => {
            state
                .protection
                .insert(format!("{owner}/{repo}#{branch}"), body.clone());
            answer(200, body)
        }
        ("GET", ["repos", owner, repo, "pulls"]) => {
            let head = query
                .split('&')
                .find_map(|p| p.strip_prefix("head="))
                .map(|h| percent_encoding::percent_decode_str(h).decode_utf8_lossy().into_owned())
                .unwrap_or_default();
            let list: Vec<Value> = state
                .pulls
                .get(&format!("{owner}/{repo}"))
                .map(|pulls| {
                    pulls
                        .iter()
                        .filter(|p| head.is_empty() || p["head"]["label"] == json!(head))
                        .filter(|p| p["state"] == json!("open"))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            answer(200, Value::Array(list))
        }
        ("POST", ["repos", owner, repo, "pulls"]) => {
            let key = format!("{owner}/{repo}");
            let pulls = state.pulls.entry(key).or_default();
            let number = pulls.len() + 1;
            let head = body.get("head").and_then(Value::as_str).unwrap_or_default();
            let pull = json!({
                "number": number,
                "state": "open",
                "html_url": format!("https://github.example/{owner}/{repo}/pull/{number}"),
                "title": body.get("title"),
                "body": body.get("body"),
                "draft": body.get("draft").cloned().unwrap_or(json!(false)),
                "head": {"ref": head, "label": format!("{owner}:{head}")},
                "base": {"ref": body.get("base")},
            });
            pulls.push(pull.clone());
            answer(201, pull)
        }
        ("PATCH", ["repos", owner, repo, "pulls", number]) => {
            let key = format!("{owner}/{repo}");
            let Some(pull) = state.pulls.get_mut(&key).and_then(|p| {
                p.iter_mut()
                    .find(|p| p["number"].as_u64() == number.parse::<u64>().ok())
            }) else {
                return not_found();
            };
            for field in ["title", "body"] {
                if let Some(v) = body.get(field) {
                    pull[field] = v.clone();
                }
            }
            answer(200, pull.clone())
        }
        ("POST", ["repos", owner, repo, "pulls", number, "requested_reviewers"]) => {
            state.reviewers.insert(format!("{owner}/{repo}#{number}"), body.clone());
            answer(201, json!({"requested_reviewers": body.get("reviewers")}))
        }
        // The lists autocomplete reads (one page: later pages are empty).
        ("GET", ["user", "repos"]) | ("GET", ["user", "orgs"]) | ("GET", ["repos", _, _, "branches"])
            if query.split('&').any(|p| p.starts_with("page=") && p != "page=1") =>
        {
            answer(200, json!([]))
        }
        ("GET", ["user", "repos"]) => answer(200, Value::Array(state.repos.values().cloned().collect())),
        ("GET", ["user", "orgs"]) => {
            let mut orgs: Vec<&String> = state.orgs.iter().collect();
            orgs.sort();
            answer(200, json!(orgs.iter().map(|o| json!({"login": o})).collect::<Vec<_>>()))
        }
        ("GET", ["repos", owner, repo, "branches"]) => match state.repos.get(&format!("{owner}/{repo}")) {
            Some(r) => answer(200, json!([{"name": r["default_branch"]}, {"name": "develop"}])),
            None => not_found(),
        },
        _ => not_found(),
    }
}

fn owner_of(seg: &[&str]) -> String {
    seg.get(1).map(|s| s.to_string()).unwrap_or_default()
}
