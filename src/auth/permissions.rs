//! Backstage's permission framework, asked on behalf of the caller: the
//! scaffolder's permissions (as `@backstage/plugin-scaffolder-common` 4.3
//! defines them), `POST {backstage}/api/permission/authorize` with the
//! caller's token, conditional decisions evaluated here with the
//! scaffolder's rules (`HAS_TAG`, `HAS_ACTION_ID`, `HAS_*_PROPERTY`,
//! `IS_TASK_OWNER`), and a short, bounded per-token cache.
//!
//! Fails closed: a backend that cannot be reached or answers nonsense is an
//! error, never an `ALLOW`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::config::PermissionSettings;

/// The scaffolder's permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    TaskCreate,
    TaskRead,
    TaskCancel,
    TemplateDryRun,
    TemplateParameterRead,
    TemplateStepRead,
    ActionExecute,
}

impl Permission {
    pub const ALL: [Permission; 7] = [
        Permission::TaskCreate,
        Permission::TaskRead,
        Permission::TaskCancel,
        Permission::TemplateDryRun,
        Permission::TemplateParameterRead,
        Permission::TemplateStepRead,
        Permission::ActionExecute,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Permission::TaskCreate => "scaffolder.task.create",
            Permission::TaskRead => "scaffolder.task.read",
            Permission::TaskCancel => "scaffolder.task.cancel",
            Permission::TemplateDryRun => "scaffolder.template.dry-run",
            Permission::TemplateParameterRead => "scaffolder.template.parameter.read",
            Permission::TemplateStepRead => "scaffolder.template.step.read",
            Permission::ActionExecute => "scaffolder.action.execute",
        }
    }

    /// The resource type of a resource permission.
    pub fn resource_type(self) -> Option<&'static str> {
        match self {
            Permission::TaskRead | Permission::TaskCancel => Some("scaffolder-task"),
            Permission::TemplateParameterRead | Permission::TemplateStepRead => Some("scaffolder-template"),
            Permission::ActionExecute => Some("scaffolder-action"),
            Permission::TaskCreate | Permission::TemplateDryRun => None,
        }
    }

    /// The permission as `createPermission` builds it (what the policy sees).
    pub fn wire(self) -> Value {
        let attributes = match self {
            Permission::TaskCreate => json!({ "action": "create" }),
            Permission::TaskRead | Permission::TemplateParameterRead | Permission::TemplateStepRead => {
                json!({ "action": "read" })
            }
            _ => json!({}),
        };
        match self.resource_type() {
            Some(resource_type) => json!({
                "type": "resource", "name": self.name(), "attributes": attributes, "resourceType": resource_type,
            }),
            None => json!({ "type": "basic", "name": self.name(), "attributes": attributes }),
        }
    }
}

/// A conditional decision's criteria (`@backstage/plugin-permission-common`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Criteria {
    AllOf {
        #[serde(rename = "allOf")]
        all_of: Vec<Criteria>,
    },
    AnyOf {
        #[serde(rename = "anyOf")]
        any_of: Vec<Criteria>,
    },
    Not {
        not: Box<Criteria>,
    },
    Rule {
        rule: String,
        #[serde(rename = "resourceType")]
        resource_type: String,
        #[serde(default)]
        params: Value,
    },
}

/// What a conditional decision is applied to.
#[derive(Debug, Clone, Copy)]
pub enum Resource<'a> {
    /// A parameter page or a step of a template (its `backstage:permissions`).
    Template(&'a Value),
    /// A step's action and its input.
    Action { action: &'a str, input: &'a Value },
    /// A task and its creator.
    Task { created_by: Option<&'a str> },
}

impl Resource<'_> {
    fn resource_type(&self) -> &'static str {
        match self {
            Resource::Template(_) => "scaffolder-template",
            Resource::Action { .. } => "scaffolder-action",
            Resource::Task { .. } => "scaffolder-task",
        }
    }
}

/// `lodash.get(value, "a.b[0].c")`.
fn get_path<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    let mut current = value;
    for segment in path.split('.') {
        let (name, indexes) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !name.is_empty() {
            current = current.get(name)?;
        }
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            let index = index.trim_end_matches(']');
            current = match index.parse::<usize>() {
                Ok(n) => current.get(n)?,
                Err(_) => current.get(index.trim_matches(|c| c == '"' || c == '\''))?,
            };
        }
    }
    Some(current)
}

/// One rule, as the scaffolder backend's `rules.ts` applies it. An unknown
/// rule, or one for another resource type, does not match.
fn apply_rule(rule: &str, resource_type: &str, params: &Value, resource: &Resource<'_>) -> bool {
    if resource_type != resource.resource_type() {
        return false;
    }
    match (rule, resource) {
        ("HAS_TAG", Resource::Template(item)) => {
            let Some(tag) = params.get("tag").and_then(Value::as_str) else {
                return false;
            };
            item.pointer("/backstage:permissions/tags")
                .and_then(Value::as_array)
                .is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some(tag)))
        }
        ("HAS_ACTION_ID", Resource::Action { action, .. }) => {
            params.get("actionId").and_then(Value::as_str) == Some(*action)
        }
        ("HAS_BOOLEAN_PROPERTY" | "HAS_NUMBER_PROPERTY" | "HAS_STRING_PROPERTY", Resource::Action { input, .. }) => {
            let Some(key) = params.get("key").and_then(Value::as_str) else {
                return false;
            };
            let found = get_path(input, key);
            let kind_ok = |v: &Value| match rule {
                "HAS_BOOLEAN_PROPERTY" => v.is_boolean(),
                "HAS_NUMBER_PROPERTY" => v.is_number(),
                _ => v.is_string(),
            };
            let Some(found) = found.filter(|v| kind_ok(v)) else {
                return false;
            };
            match params.get("value") {
                None | Some(Value::Null) => true,
                Some(expected) if kind_ok(expected) => match (expected.as_f64(), found.as_f64()) {
                    (Some(a), Some(b)) => a == b,
                    _ => expected == found,
                },
                Some(_) => false,
            }
        }
        ("IS_TASK_OWNER", Resource::Task { created_by }) => {
            let Some(created_by) = created_by else { return false };
            params
                .get("createdBy")
                .and_then(Value::as_array)
                .is_some_and(|refs| refs.iter().any(|r| r.as_str() == Some(*created_by)))
        }
        _ => false,
    }
}

impl Criteria {
    pub fn matches(&self, resource: &Resource<'_>) -> bool {
        match self {
            Criteria::AllOf { all_of } => all_of.iter().all(|c| c.matches(resource)),
            Criteria::AnyOf { any_of } => any_of.iter().any(|c| c.matches(resource)),
            Criteria::Not { not } => !not.matches(resource),
            Criteria::Rule {
                rule,
                resource_type,
                params,
            } => apply_rule(rule, resource_type, params, resource),
        }
    }
}

/// A decision of the permission backend.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Allow,
    Deny,
    Conditional(Criteria),
}

impl Decision {
    /// `createConditionAuthorizer`: ALLOW and DENY as they are, a
    /// conditional decision by its criteria on `resource`.
    pub fn authorizes(&self, resource: &Resource<'_>) -> bool {
        match self {
            Decision::Allow => true,
            Decision::Deny => false,
            Decision::Conditional(criteria) => criteria.matches(resource),
        }
    }

    /// `ALLOW`, `DENY` or `CONDITIONAL`, for logs and the audit trail.
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Allow => "ALLOW",
            Decision::Deny => "DENY",
            Decision::Conditional(_) => "CONDITIONAL",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PermissionError {
    #[error("the permission backend at {url} cannot be reached: {reason}; nothing is allowed until it answers")]
    Unreachable { url: String, reason: String },
    #[error("the permission backend at {url} answered {status}: {body}")]
    Refused { url: String, status: u16, body: String },
    #[error("the permission backend at {url} answered something that is not a decision: {reason}")]
    Malformed { url: String, reason: String },
}

/// One question: a permission, and for a resource permission the resource
/// (its JSON, see [`resource_json`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub permission: Permission,
    pub resource: Option<Value>,
}

/// The resource as the scaffolder's rules see it, self-contained: a
/// template part's `backstage:permissions`, an action's id and input, a
/// task's creator. It travels as the `resourceRef` (see [`RESOURCE_REF_PREFIX`]),
/// so applying conditions to it needs no lookup and reveals nothing the
/// question did not carry.
pub fn resource_json(resource: &Resource<'_>) -> Value {
    match resource {
        Resource::Template(item) => match item.get("backstage:permissions") {
            Some(p) => json!({ "backstage:permissions": p }),
            None => json!({}),
        },
        Resource::Action { action, input } => json!({ "action": action, "input": input }),
        Resource::Task { created_by } => json!({ "createdBy": created_by }),
    }
}

/// `resourceRef`s this service sends start with this, then base64url JSON.
pub const RESOURCE_REF_PREFIX: &str = "scaffolder-resource:";

fn resource_ref(resource: &Value) -> String {
    use base64::Engine;
    format!(
        "{RESOURCE_REF_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(resource.to_string())
    )
}

fn decode_resource_ref(raw: &str) -> Option<Value> {
    use base64::Engine;
    let encoded = raw.strip_prefix(RESOURCE_REF_PREFIX)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Backstage's `apply-conditions` for the scaffolder's resources: the
/// permission backend, asked about one of our `resourceRef`s, got a
/// conditional decision from its policy and asks the plugin that owns the
/// resource type (this service) whether the resource meets it. A ref that is
/// not ours, or an unknown resource type, is DENY.
pub fn apply_conditions(resource_ref: &str, resource_type: &str, conditions: &Value) -> bool {
    let (Some(resource), Ok(criteria)) = (
        decode_resource_ref(resource_ref),
        serde_json::from_value::<Criteria>(conditions.clone()),
    ) else {
        return false;
    };
    let empty = json!({});
    let resource = match resource_type {
        "scaffolder-template" => Resource::Template(&resource),
        "scaffolder-action" => Resource::Action {
            action: resource.get("action").and_then(Value::as_str).unwrap_or_default(),
            input: resource.get("input").unwrap_or(&empty),
        },
        "scaffolder-task" => Resource::Task {
            created_by: resource.get("createdBy").and_then(Value::as_str),
        },
        _ => return false,
    };
    criteria.matches(&resource)
}

#[derive(Deserialize)]
struct AuthorizeItem {
    id: String,
    result: String,
}

#[derive(Deserialize)]
struct AuthorizeResponse {
    items: Vec<AuthorizeItem>,
}

struct CacheEntry {
    at: Instant,
    allowed: bool,
}

type CacheKey = [u8; 32];

/// Asks the permission backend, caching each answer for the same token,
/// permission and resource for `permission.cache_seconds`, at most
/// `permission.cache_entries` answers.
pub struct PermissionClient {
    http: reqwest::Client,
    url: String,
    ttl: Duration,
    max_entries: usize,
    cache: Mutex<HashMap<CacheKey, CacheEntry>>,
}

impl std::fmt::Debug for PermissionClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PermissionClient").field("url", &self.url).finish()
    }
}

fn item_of(check: &Check) -> Value {
    let mut item = json!({ "permission": check.permission.wire() });
    if let (Some(resource), Some(_)) = (&check.resource, check.permission.resource_type()) {
        item["resourceRef"] = json!(resource_ref(resource));
    }
    item
}

impl PermissionClient {
    /// `None` when the permission framework is off.
    pub fn from_settings(
        settings: &PermissionSettings,
        backstage_base: Option<&str>,
    ) -> Result<Option<PermissionClient>, String> {
        if !settings.enabled {
            return Ok(None);
        }
        let base = settings
            .base_url
            .as_deref()
            .or(backstage_base)
            .ok_or_else(|| "permission.enabled needs permission.base_url or auth.backstage.base_url".to_owned())?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.timeout_seconds.max(1)))
            .build()
            .map_err(|e| format!("cannot build the permission client: {e}"))?;
        Ok(Some(PermissionClient {
            http,
            url: format!("{}/api/permission/authorize", base.trim_end_matches('/')),
            ttl: Duration::from_secs(settings.cache_seconds),
            max_entries: settings.cache_entries.max(1),
            cache: Mutex::new(HashMap::new()),
        }))
    }

    fn key(token: &str, item: &Value) -> CacheKey {
        let mut hasher = Sha256::new();
        hasher.update(token.as_bytes());
        hasher.update([0]);
        hasher.update(item.to_string().as_bytes());
        hasher.finalize().into()
    }

    fn cached(&self, key: &CacheKey) -> Option<bool> {
        let cache = self.cache.lock().ok()?;
        cache.get(key).filter(|e| e.at.elapsed() < self.ttl).map(|e| e.allowed)
    }

    fn remember(&self, key: CacheKey, allowed: bool) {
        if self.ttl.is_zero() {
            return;
        }
        let Ok(mut cache) = self.cache.lock() else { return };
        if cache.len() >= self.max_entries {
            let ttl = self.ttl;
            cache.retain(|_, e| e.at.elapsed() < ttl);
            if cache.len() >= self.max_entries {
                cache.clear();
            }
        }
        cache.insert(
            key,
            CacheEntry {
                at: Instant::now(),
                allowed,
            },
        );
    }

    /// Whether the holder of `token` (a Backstage user token) is allowed
    /// each check, in order: one request for all that are not cached.
    pub async fn check(&self, token: &str, checks: &[Check]) -> Result<Vec<bool>, PermissionError> {
        let items: Vec<Value> = checks.iter().map(item_of).collect();
        let keys: Vec<CacheKey> = items.iter().map(|i| Self::key(token, i)).collect();
        let mut answers: Vec<Option<bool>> = keys.iter().map(|k| self.cached(k)).collect();
        let missing: Vec<usize> = (0..items.len()).filter(|i| answers[*i].is_none()).collect();
        if !missing.is_empty() {
            let body: Vec<Value> = missing
                .iter()
                .map(|i| {
                    let mut item = items[*i].clone();
                    item["id"] = json!(i.to_string());
                    item
                })
                .collect();
            let parsed = self.post(token, &json!({ "items": body })).await?;
            for i in missing {
                let item = parsed
                    .items
                    .iter()
                    .find(|item| item.id == i.to_string())
                    .ok_or_else(|| PermissionError::Malformed {
                        url: self.url.clone(),
                        reason: format!("no decision for {}", checks[i].permission.name()),
                    })?;
                let allowed = match item.result.as_str() {
                    "ALLOW" => true,
                    "DENY" => false,
                    other => {
                        return Err(PermissionError::Malformed {
                            url: self.url.clone(),
                            reason: format!("result {other:?} for {}", checks[i].permission.name()),
                        })
                    }
                };
                self.remember(keys[i], allowed);
                answers[i] = Some(allowed);
            }
        }
        Ok(answers.into_iter().map(|a| a.unwrap_or(false)).collect())
    }

    /// One basic permission by name (approval gates name any permission a
    /// policy knows); not cached.
    pub async fn allows_named(&self, token: &str, name: &str) -> Result<bool, PermissionError> {
        let body =
            json!({ "items": [{ "id": "0", "permission": { "type": "basic", "name": name, "attributes": {} } }] });
        let parsed = self.post(token, &body).await?;
        Ok(parsed.items.first().is_some_and(|i| i.result == "ALLOW"))
    }

    async fn post(&self, token: &str, body: &Value) -> Result<AuthorizeResponse, PermissionError> {
        let unreachable = |e: reqwest::Error| PermissionError::Unreachable {
            url: self.url.clone(),
            reason: e.to_string(),
        };
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let text = response.text().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(PermissionError::Refused {
                url: self.url.clone(),
                status: status.as_u16(),
                body: text.chars().take(500).collect(),
            });
        }
        serde_json::from_str(&text).map_err(|e| PermissionError::Malformed {
            url: self.url.clone(),
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn criteria(value: Value) -> Criteria {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn permissions_are_backstage_s() {
        assert_eq!(
            Permission::TaskCreate.wire(),
            json!({"type": "basic", "name": "scaffolder.task.create", "attributes": {"action": "create"}})
        );
        assert_eq!(
            Permission::ActionExecute.wire(),
            json!({"type": "resource", "name": "scaffolder.action.execute", "attributes": {}, "resourceType": "scaffolder-action"})
        );
        assert_eq!(Permission::TaskCancel.resource_type(), Some("scaffolder-task"));
    }

    #[test]
    fn template_rules_match_tags() {
        let not_secret = Decision::Conditional(criteria(json!({
            "not": {"rule": "HAS_TAG", "resourceType": "scaffolder-template", "params": {"tag": "secret"}}
        })));
        let tagged = json!({"backstage:permissions": {"tags": ["secret"]}});
        let plain = json!({"title": "x"});
        assert!(!not_secret.authorizes(&Resource::Template(&tagged)));
        assert!(not_secret.authorizes(&Resource::Template(&plain)));
        assert!(!Decision::Deny.authorizes(&Resource::Template(&plain)));
    }

    #[test]
    fn action_rules_match_ids_and_properties() {
        let decision = Decision::Conditional(criteria(json!({"anyOf": [
            {"rule": "HAS_ACTION_ID", "resourceType": "scaffolder-action", "params": {"actionId": "debug:log"}},
            {"allOf": [
                {"rule": "HAS_ACTION_ID", "resourceType": "scaffolder-action", "params": {"actionId": "debug:wait"}},
                {"rule": "HAS_NUMBER_PROPERTY", "resourceType": "scaffolder-action", "params": {"key": "seconds", "value": 1}},
            ]},
            {"rule": "HAS_STRING_PROPERTY", "resourceType": "scaffolder-action", "params": {"key": "target.name[0]", "value": "ok"}},
            {"rule": "HAS_BOOLEAN_PROPERTY", "resourceType": "scaffolder-action", "params": {"key": "dry"}},
        ]})));
        let allowed = |action: &str, input: Value| decision.authorizes(&Resource::Action { action, input: &input });
        assert!(allowed("debug:log", json!({})));
        assert!(allowed("debug:wait", json!({"seconds": 1})));
        assert!(!allowed("debug:wait", json!({"seconds": 2})));
        assert!(!allowed("debug:wait", json!({"seconds": "1"})));
        assert!(allowed("fs:delete", json!({"target": {"name": ["ok"]}})));
        assert!(allowed("fs:delete", json!({"dry": false})));
        assert!(!allowed("fs:delete", json!({"dry": "yes"})));
        // A rule of another resource type, or an unknown one, never matches.
        let odd = Decision::Conditional(criteria(
            json!({"rule": "HAS_TAG", "resourceType": "scaffolder-template", "params": {"tag": "x"}}),
        ));
        assert!(!odd.authorizes(&Resource::Action {
            action: "debug:log",
            input: &json!({})
        }));
    }

    #[test]
    fn conditions_apply_to_the_resource_a_ref_carries() {
        let item = json!({"title": "x", "backstage:permissions": {"tags": ["secret"]}});
        let r = resource_ref(&resource_json(&Resource::Template(&item)));
        let not_secret =
            json!({"not": {"rule": "HAS_TAG", "resourceType": "scaffolder-template", "params": {"tag": "secret"}}});
        assert!(!apply_conditions(&r, "scaffolder-template", &not_secret));
        let plain = resource_ref(&resource_json(&Resource::Template(&json!({"title": "y"}))));
        assert!(apply_conditions(&plain, "scaffolder-template", &not_secret));
        assert!(!apply_conditions(
            "component:default/x",
            "scaffolder-template",
            &not_secret
        ));
        let input = json!({"seconds": 0});
        let action = resource_ref(&resource_json(&Resource::Action {
            action: "debug:wait",
            input: &input,
        }));
        let zero = json!({"rule": "HAS_NUMBER_PROPERTY", "resourceType": "scaffolder-action", "params": {"key": "seconds", "value": 0}});
        assert!(apply_conditions(&action, "scaffolder-action", &zero));
        assert!(!apply_conditions(&action, "scaffolder-template", &zero));
    }

    #[test]
    fn task_owner_rule() {
        let decision = Decision::Conditional(criteria(json!({
            "rule": "IS_TASK_OWNER", "resourceType": "scaffolder-task", "params": {"createdBy": ["user:default/jane"]}
        })));
        assert!(decision.authorizes(&Resource::Task {
            created_by: Some("user:default/jane")
        }));
        assert!(!decision.authorizes(&Resource::Task {
            created_by: Some("user:default/john")
        }));
        assert!(!decision.authorizes(&Resource::Task { created_by: None }));
    }
}
