//! A fake GitHub REST API (the endpoints publishing and the `github:*`
//! actions call) on 127.0.0.1:0. Created repositories are real bare
//! repositories under a temporary directory, and their `clone_url` is a
//! `file://` URL to them. Failures (rate limits, 5xx…) can be scripted per
//! request. Every request is first checked against GitHub's REST
//! description (`github_openapi`): one GitHub would reject is answered 400
//! and fails the test when the fake is dropped. Actions secrets are opened
//! with the fake's own key, so a secret that was not sealed for it fails too.

use std::collections::{BTreeMap, HashSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::prelude::{Engine, BASE64_STANDARD};
use crypto_box::aead::OsRng;
use crypto_box::SecretKey;
use serde_json::{json, Value};

use crate::publish::github_openapi::{description, Description};
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
    /// Requests GitHub's REST description rejects.
    pub violations: Vec<String>,
    /// `owner/repo` or `owner/repo#environment` → name → value (secrets opened).
    pub variables: BTreeMap<String, BTreeMap<String, String>>,
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// Per repository: hooks, autolinks, deploy keys, rulesets, issues.
    pub hooks: BTreeMap<String, Vec<Value>>,
    pub autolinks: BTreeMap<String, Vec<Value>>,
    pub keys: BTreeMap<String, Vec<Value>>,
    pub rulesets: BTreeMap<String, Vec<Value>>,
    pub issues: BTreeMap<String, Vec<Value>>,
    /// `owner/repo#number` → labels.
    pub labels: BTreeMap<String, Vec<String>>,
    /// `owner/repo#environment` → the environment's settings.
    pub environments: BTreeMap<String, Value>,
    pub branch_policies: BTreeMap<String, Vec<Value>>,
    pub pages: BTreeMap<String, Value>,
    pub dispatches: Vec<(String, Value)>,
    /// `owner/repo#branch` of branches requiring signed commits.
    pub signatures: HashSet<String>,
    pub settings: BTreeMap<String, Value>,
    /// Users and `org/team` slugs GitHub knows, with their ids.
    pub users: BTreeMap<String, u64>,
    pub team_ids: BTreeMap<String, u64>,
    pub next_id: u64,
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
        let violations = self.state.lock().map(|s| s.violations.clone()).unwrap_or_default();
        if !violations.is_empty() && !std::thread::panicking() {
            panic!(
                "the fake GitHub received requests GitHub would reject:\n{}",
                violations.join("\n")
            );
        }
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
    description: Option<&'static Description>,
    key: SecretKey,
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
            s.users.insert("alice".into(), 1001);
            s.users.insert("bob".into(), 1002);
            s.team_ids.insert("acme/platform".into(), 2001);
            s.next_id = 1;
        }
        let shared = web::Data::new(Shared {
            state: state.clone(),
            root: root.clone(),
            token: token.map(str::to_owned),
            description: description(),
            key: SecretKey::generate(&mut OsRng),
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

    /// Makes `org` an organization, with a team `team` of id `team_id`.
    pub fn add_org(&self, org: &str, team: &str, team_id: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.orgs.insert(org.to_owned());
            s.team_ids.insert(format!("{org}/{team}"), team_id);
        }
    }

    /// Clears the rejected requests of a test that sent one on purpose.
    pub fn forget_violations(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.violations.clear();
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

async fn handle(req: HttpRequest, raw: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let method = req.method().as_str().to_owned();
    let path = req.path().to_owned();
    let query = req.query_string().to_owned();
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
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
    if let Some(description) = shared.description {
        let api_path = path.strip_prefix("/api/v3").unwrap_or(&path);
        if let Err(violation) = description.check(&method, api_path, &query, &raw) {
            state.violations.push(violation.clone());
            return answer(400, json!({"message": violation}));
        }
    }
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
            if owner.starts_with("ghost") {
                return not_found();
            }
            let kind = if state.orgs.contains(*owner) {
                "Organization"
            } else {
                "User"
            };
            let id = state.users.get(*owner).copied().unwrap_or(9000);
            answer(200, json!({"login": owner, "id": id, "type": kind}))
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
        // Later pages of the lists the actions read are empty.
        ("GET", ["repos", _, _, "hooks" | "keys" | "rulesets"]) if later_page(&query) => answer(200, json!([])),
        ("GET", ["orgs", org, "teams", slug]) => match state.team_ids.get(&format!("{org}/{slug}")) {
            Some(id) => answer(200, json!({"id": id, "slug": slug, "name": slug})),
            None => not_found(),
        },
        ("GET", ["repos", owner, repo, "actions", "secrets", "public-key"])
        | ("GET", ["repos", owner, repo, "environments", _, "secrets", "public-key"]) => {
            let scope = scope_of(owner, repo, &seg);
            if seg[3] == "environments" && !state.environments.contains_key(&scope) {
                return not_found();
            }
            let key = BASE64_STANDARD.encode(shared.key.public_key().as_bytes());
            answer(200, json!({"key_id": FAKE_KEY_ID, "key": key}))
        }
        ("PUT", ["repos", owner, repo, "actions", "secrets", name])
        | ("PUT", ["repos", owner, repo, "environments", _, "secrets", name]) => {
            let scope = scope_of(owner, repo, &seg);
            if body["key_id"] != json!(FAKE_KEY_ID) {
                return answer(422, json!({"message": "Bad key_id"}));
            }
            let opened = body["encrypted_value"]
                .as_str()
                .and_then(|v| BASE64_STANDARD.decode(v).ok())
                .and_then(|sealed| shared.key.unseal(&sealed).ok())
                .and_then(|plain| String::from_utf8(plain).ok());
            let Some(plain) = opened else {
                state
                    .violations
                    .push(format!("{method} {path}: the secret is not sealed for the public key"));
                return answer(422, json!({"message": "encrypted_value could not be decrypted"}));
            };
            let created = state
                .secrets
                .entry(scope)
                .or_default()
                .insert(name.to_string(), plain)
                .is_none();
            answer(if created { 201 } else { 204 }, json!({}))
        }
        ("POST", ["repos", owner, repo, "actions", "variables"])
        | ("POST", ["repos", owner, repo, "environments", _, "variables"]) => {
            let scope = scope_of(owner, repo, &seg);
            let (Some(name), Some(value)) = (body["name"].as_str(), body["value"].as_str()) else {
                return answer(422, json!({"message": "name and value are required"}));
            };
            let variables = state.variables.entry(scope).or_default();
            if variables.contains_key(name) {
                return answer(409, json!({"message": "Already exists - Variable already exists"}));
            }
            variables.insert(name.to_owned(), value.to_owned());
            answer(201, json!({}))
        }
        ("PATCH", ["repos", owner, repo, "actions", "variables", name])
        | ("PATCH", ["repos", owner, repo, "environments", _, "variables", name]) => {
            let scope = scope_of(owner, repo, &seg);
            match state.variables.get_mut(&scope).and_then(|v| v.get_mut(*name)) {
                Some(value) => {
                    *value = body["value"].as_str().unwrap_or_default().to_owned();
                    HttpResponse::NoContent().finish()
                }
                None => not_found(),
            }
        }
        ("PUT", ["repos", owner, repo, "environments", name]) => {
            let key = format!("{owner}/{repo}#{name}");
            let environment = state.environments.entry(key).or_insert_with(|| json!({"name": name}));
            if let Some(fields) = body.as_object() {
                for (k, v) in fields {
                    environment[k] = v.clone();
                }
            }
            answer(200, environment.clone())
        }
        ("GET", ["repos", owner, repo, "environments", name, "deployment-branch-policies"]) => {
            let key = format!("{owner}/{repo}#{name}");
            if !state.environments.contains_key(&key) {
                return not_found();
            }
            let policies = if later_page(&query) {
                Vec::new()
            } else {
                state.branch_policies.get(&key).cloned().unwrap_or_default()
            };
            answer(200, json!({"total_count": policies.len(), "branch_policies": policies}))
        }
        ("POST", ["repos", owner, repo, "environments", name, "deployment-branch-policies"]) => {
            let key = format!("{owner}/{repo}#{name}");
            let custom = state
                .environments
                .get(&key)
                .map(|e| e["deployment_branch_policy"]["custom_branch_policies"] == json!(true));
            match custom {
                None => not_found(),
                Some(false) => answer(
                    404,
                    json!({"message": "Custom branch policies are not enabled for this environment"}),
                ),
                Some(true) => {
                    let id = next_id(&mut state);
                    let policy = json!({"id": id, "name": body["name"], "type": body.get("type").cloned().unwrap_or(json!("branch"))});
                    state.branch_policies.entry(key).or_default().push(policy.clone());
                    answer(200, policy)
                }
            }
        }
        ("GET", ["repos", owner, repo, kind @ ("hooks" | "autolinks" | "keys" | "rulesets")]) => {
            let key = format!("{owner}/{repo}");
            let list = match *kind {
                "hooks" => state.hooks.get(&key),
                "autolinks" => state.autolinks.get(&key),
                "keys" => state.keys.get(&key),
                _ => state.rulesets.get(&key),
            };
            answer(200, Value::Array(list.cloned().unwrap_or_default()))
        }
        ("POST", ["repos", owner, repo, "hooks"]) => {
            let id = next_id(&mut state);
            let mut hook = body.clone();
            hook["id"] = json!(id);
            hook["type"] = json!("Repository");
            if let Some(config) = hook["config"].as_object_mut() {
                // GitHub never answers a hook's secret.
                if config.contains_key("secret") {
                    config.insert("secret".into(), json!("********"));
                }
            }
            state
                .hooks
                .entry(format!("{owner}/{repo}"))
                .or_default()
                .push(hook.clone());
            state.settings.insert(
                format!("{owner}/{repo}#hook{id}-secret"),
                body["config"]["secret"].clone(),
            );
            answer(201, hook)
        }
        ("PATCH", ["repos", owner, repo, "hooks", id]) => {
            let key = format!("{owner}/{repo}");
            let Some(hook) = state
                .hooks
                .get_mut(&key)
                .and_then(|hooks| hooks.iter_mut().find(|h| same_number(&h["id"], id)))
            else {
                return not_found();
            };
            for field in ["events", "active", "config"] {
                if let Some(v) = body.get(field) {
                    hook[field] = v.clone();
                }
            }
            let hook = hook.clone();
            state
                .settings
                .insert(format!("{key}#hook{id}-secret"), body["config"]["secret"].clone());
            answer(200, hook)
        }
        ("POST", ["repos", owner, repo, "autolinks"]) => {
            let links = state.autolinks.entry(format!("{owner}/{repo}")).or_default();
            if links.iter().any(|l| l["key_prefix"] == body["key_prefix"]) {
                return answer(
                    422,
                    json!({"message": "Validation Failed", "errors": [{"resource": "KeyLink", "code": "already_exists", "field": "key_prefix"}]}),
                );
            }
            let id = links.len() + 1;
            let mut link = body.clone();
            link["id"] = json!(id);
            links.push(link.clone());
            answer(201, link)
        }
        ("POST", ["repos", owner, repo, "keys"]) => {
            let keys = state.keys.entry(format!("{owner}/{repo}")).or_default();
            let material = |k: &Value| {
                k.as_str()
                    .map(|k| k.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
                    .unwrap_or_default()
            };
            if keys.iter().any(|k| material(&k["key"]) == material(&body["key"])) {
                return answer(
                    422,
                    json!({"message": "Validation Failed", "errors": [{"resource": "PublicKey", "code": "custom", "field": "key", "message": "key is already in use"}]}),
                );
            }
            let id = keys.len() + 1;
            let key = json!({"id": id, "key": material(&body["key"]), "title": body["title"], "read_only": body["read_only"]});
            keys.push(key.clone());
            answer(201, key)
        }
        ("POST", ["repos", owner, repo, "rulesets"]) => {
            let id = next_id(&mut state);
            let rulesets = state.rulesets.entry(format!("{owner}/{repo}")).or_default();
            if rulesets.iter().any(|r| r["name"] == body["name"]) {
                return answer(
                    422,
                    json!({"message": "Validation Failed", "errors": ["Name must be unique"]}),
                );
            }
            let mut ruleset = body.clone();
            ruleset["id"] = json!(id);
            ruleset["source_type"] = json!("Repository");
            ruleset["source"] = json!(format!("{owner}/{repo}"));
            rulesets.push(ruleset.clone());
            answer(201, ruleset)
        }
        ("PUT", ["repos", owner, repo, "rulesets", id]) => {
            let Some(ruleset) = state
                .rulesets
                .get_mut(&format!("{owner}/{repo}"))
                .and_then(|r| r.iter_mut().find(|r| same_number(&r["id"], id)))
            else {
                return not_found();
            };
            if let Some(fields) = body.as_object() {
                for (k, v) in fields {
                    ruleset[k] = v.clone();
                }
            }
            answer(200, ruleset.clone())
        }
        ("POST", ["repos", owner, repo, "issues"]) => {
            let key = format!("{owner}/{repo}");
            let number = state.issues.get(&key).map_or(0, Vec::len) + state.pulls.get(&key).map_or(0, Vec::len) + 1;
            let mut issue = body.clone();
            issue["number"] = json!(number);
            issue["html_url"] = json!(format!("https://github.example/{owner}/{repo}/issues/{number}"));
            state.issues.entry(key).or_default().push(issue.clone());
            answer(201, issue)
        }
        ("POST", ["repos", owner, repo, "issues", number, "labels"]) => {
            let key = format!("{owner}/{repo}");
            let exists =
                |list: Option<&Vec<Value>>| list.is_some_and(|l| l.iter().any(|i| same_number(&i["number"], number)));
            if !exists(state.issues.get(&key)) && !exists(state.pulls.get(&key)) {
                return not_found();
            }
            let labels = state.labels.entry(format!("{key}#{number}")).or_default();
            for label in body["labels"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !labels.iter().any(|l| l == label) {
                    labels.push(label.to_owned());
                }
            }
            answer(
                200,
                json!(labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>()),
            )
        }
        ("POST", ["repos", owner, repo, "issues", number, "assignees"]) => {
            let key = format!("{owner}/{repo}");
            let Some(pull) = state
                .pulls
                .get_mut(&key)
                .and_then(|p| p.iter_mut().find(|p| same_number(&p["number"], number)))
            else {
                return not_found();
            };
            pull["assignees"] = body["assignees"].clone();
            answer(201, pull.clone())
        }
        ("POST", ["repos", owner, repo, "pages"]) => {
            let key = format!("{owner}/{repo}");
            if state.pages.contains_key(&key) {
                return answer(409, json!({"message": "GitHub Pages is already enabled."}));
            }
            state.pages.insert(key, body.clone());
            answer(
                201,
                json!({"url": format!("https://api.github.example/repos/{owner}/{repo}/pages"), "build_type": body["build_type"]}),
            )
        }
        ("PUT", ["repos", owner, repo, "pages"]) => match state.pages.get_mut(&format!("{owner}/{repo}")) {
            Some(pages) => {
                *pages = body.clone();
                HttpResponse::NoContent().finish()
            }
            None => not_found(),
        },
        ("POST", ["repos", owner, repo, "actions", "workflows", workflow, "dispatches"]) => {
            if *workflow == "missing.yaml" {
                return not_found();
            }
            state
                .dispatches
                .push((format!("{owner}/{repo}/{workflow}"), body.clone()));
            if body["return_run_details"] == json!(true) {
                let id = 7000 + state.dispatches.len();
                answer(
                    200,
                    json!({
                        "workflow_run_id": id,
                        "run_url": format!("https://api.github.example/repos/{owner}/{repo}/actions/runs/{id}"),
                        "html_url": format!("https://github.example/{owner}/{repo}/actions/runs/{id}"),
                    }),
                )
            } else {
                HttpResponse::NoContent().finish()
            }
        }
        ("POST", ["repos", owner, repo, "branches", branch, "protection", "required_signatures"]) => {
            let key = format!("{owner}/{repo}#{branch}");
            if !state.protection.contains_key(&key) {
                return not_found();
            }
            state.signatures.insert(key);
            answer(200, json!({"enabled": true}))
        }
        ("PUT", ["repos", owner, repo, "actions", "permissions", "access"])
        | ("PUT", ["repos", owner, repo, "actions", "oidc", "customization", "sub"])
        | ("PATCH", ["repos", owner, repo, "properties", "values"])
        | ("PUT", ["repos", owner, repo, "subscription"]) => {
            let setting = seg[3..].join("/");
            state.settings.insert(format!("{owner}/{repo}#{setting}"), body.clone());
            match setting.as_str() {
                "subscription" => answer(200, json!({"subscribed": true})),
                "actions/oidc/customization/sub" => answer(201, json!({})),
                _ => HttpResponse::NoContent().finish(),
            }
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

const FAKE_KEY_ID: &str = "568250167242549743";

/// `owner/repo`, or `owner/repo#environment` for `…/environments/{name}/…`.
fn scope_of(owner: &str, repo: &str, seg: &[&str]) -> String {
    match seg {
        [_, _, _, "environments", name, ..] => format!("{owner}/{repo}#{name}"),
        _ => format!("{owner}/{repo}"),
    }
}

fn later_page(query: &str) -> bool {
    query.split('&').any(|p| p.starts_with("page=") && p != "page=1")
}

fn next_id(state: &mut State) -> u64 {
    state.next_id += 1;
    state.next_id
}

/// Whether a JSON id equals the id in a path segment.
fn same_number(value: &Value, segment: &str) -> bool {
    value.as_u64().is_some_and(|n| segment.parse() == Ok(n))
}
