//! `approval:wait`: the task waits until an approver approves or rejects it,
//! or the timeout passes. The action itself never blocks: the first time it
//! answers [`ActionError::AwaitApproval`] with the gate, the runner stops
//! and the worker parks the task (no worker slot, no lease). When a decision
//! re-opens the task, the step runs again with the decision in
//! `ActionContext::approval` and completes (approved) or fails (rejected,
//! timed out).

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};
use crate::domain::entity_ref::EntityRef;
use crate::model::approval::{ApprovalGate, Verdict};

pub struct ApprovalWait;

/// Longest wait a gate may ask for: 30 days.
const MAX_TIMEOUT_SECONDS: u64 = 30 * 24 * 3600;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Approvers {
    /// User entity refs (`user:default/alice`, or just `alice`).
    #[serde(default)]
    pub users: Vec<String>,
    /// Group entity refs (`group:default/platform`); members are recognised
    /// by the ownership refs of their Backstage token.
    #[serde(default)]
    pub groups: Vec<String>,
    /// A permission the Backstage permission backend must allow the approver.
    pub permission: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// Who may approve or reject.
    pub approvers: Approvers,
    /// What the approvers are asked (shown in the task log).
    pub message: Option<String>,
    /// How long to wait before the step fails: seconds, or a number with a
    /// unit (`90m`, `12h`, `7d`). No timeout when absent.
    #[schemars(with = "Option<Value>")]
    pub timeout: Option<Value>,
    /// Whether the task's creator may approve it (default false).
    #[serde(default)]
    pub allow_self_approval: bool,
}

fn parse_timeout(value: &Value) -> Option<u64> {
    let seconds = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => {
            let s = s.trim();
            let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
            let (number, unit) = s.split_at(split);
            let n: f64 = number.parse().ok()?;
            n * match unit.trim() {
                "" | "s" => 1.0,
                "m" | "min" => 60.0,
                "h" => 3600.0,
                "d" => 86400.0,
                _ => return None,
            }
        }
        _ => return None,
    };
    (seconds.is_finite() && seconds >= 1.0 && seconds <= MAX_TIMEOUT_SECONDS as f64).then_some(seconds as u64)
}

fn normalized(refs: &[String], kind: &str) -> Result<Vec<String>, ActionError> {
    refs.iter()
        .map(|raw| {
            let parsed = EntityRef::parse(raw, kind, "default")
                .map_err(|e| ActionError::InvalidInput(format!("approvers: '{raw}' is not an entity ref: {e}")))?;
            if !parsed.kind.eq_ignore_ascii_case(kind) {
                return Err(ActionError::InvalidInput(format!(
                    "approvers.{kind}s: '{raw}' is not a {kind} entity ref"
                )));
            }
            Ok(parsed.to_string().to_ascii_lowercase())
        })
        .collect()
}

impl Input {
    fn gate(&self, step_id: &str) -> Result<ApprovalGate, ActionError> {
        let users = normalized(&self.approvers.users, "user")?;
        let groups = normalized(&self.approvers.groups, "group")?;
        let permission = self.approvers.permission.clone().filter(|p| !p.trim().is_empty());
        if users.is_empty() && groups.is_empty() && permission.is_none() {
            return Err(ActionError::InvalidInput(
                "approvers must name at least one user, group or permission".into(),
            ));
        }
        let timeout_seconds = match &self.timeout {
            // An unset template parameter renders to nothing: no timeout.
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(raw) => Some(parse_timeout(raw).ok_or_else(|| {
                ActionError::InvalidInput(format!(
                    "timeout must be seconds or a number with a unit (s, m, h, d) between 1 s and 30 d, got {raw}"
                ))
            })?),
        };
        Ok(ApprovalGate {
            step_id: step_id.to_owned(),
            users,
            groups,
            permission,
            message: self.message.clone(),
            timeout_seconds,
            allow_self_approval: self.allow_self_approval,
        })
    }
}

#[async_trait]
impl ActionHandler for ApprovalWait {
    type Input = Input;
    const ID: &'static str = "approval:wait";
    const DESCRIPTION: &'static str =
        "Waits until an approver approves or rejects the task (POST /v2/tasks/{id}/approve or /reject), \
         without holding a worker. A rejection or the timeout fails the step.";
    const SUPPORTS_DRY_RUN: bool = true;

    fn output_schema(&self) -> Option<Value> {
        Some(json!({
            "type": "object",
            "properties": {
                "approvedBy": { "type": "string", "description": "The approver's entity ref" },
                "comment": { "type": "string", "description": "The approver's comment" }
            }
        }))
    }

    fn examples(&self) -> Vec<ActionExample> {
        vec![ActionExample {
            description: "Wait for the platform team before touching production",
            example: "steps:\n  - action: approval:wait\n    id: approve-prod\n    name: Approval by the platform team\n    input:\n      approvers:\n        groups: [group:default/platform]\n      message: Register ${{ parameters.name }} on a production cluster?\n      timeout: 24h\n",
        }]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        let gate = input.gate(&ctx.step_id)?;
        if ctx.dry_run {
            ctx.logger
                .info(format!(
                    "Dry run: a real run waits here for approval by {}",
                    gate.approvers()
                ))
                .await;
            return Ok(());
        }
        let Some(decision) = ctx.approval.take() else {
            return Err(ActionError::AwaitApproval(Box::new(gate)));
        };
        let by = decision.by.clone().unwrap_or_else(|| "nobody".into());
        let comment = decision.comment.clone().unwrap_or_default();
        match decision.verdict {
            Verdict::Approved => {
                ctx.output("approvedBy", json!(by));
                ctx.output("comment", json!(comment));
                Ok(())
            }
            Verdict::Rejected if comment.is_empty() => Err(ActionError::Failed(format!("Rejected by {by}"))),
            Verdict::Rejected => Err(ActionError::Failed(format!("Rejected by {by}: {comment}"))),
            Verdict::TimedOut => Err(ActionError::Failed(format!(
                "No approval by {} within {} seconds",
                gate.approvers(),
                gate.timeout_seconds.unwrap_or_default()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(value: Value) -> Input {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn gates_normalise_refs_and_parse_timeouts() {
        let gate = input(json!({
            "approvers": { "users": ["Alice"], "groups": ["group:default/Platform"] },
            "timeout": "2h",
        }))
        .gate("gate")
        .unwrap();
        assert_eq!(gate.users, vec!["user:default/alice"]);
        assert_eq!(gate.groups, vec!["group:default/platform"]);
        assert_eq!(gate.timeout_seconds, Some(7200));
        assert!(!gate.allow_self_approval);
        assert_eq!(gate.approvers(), "group:default/platform, user:default/alice");
        assert!(input(json!({ "approvers": {} })).gate("g").is_err());
        assert!(input(json!({ "approvers": { "users": ["group:default/x"] } }))
            .gate("g")
            .is_err());
        assert!(input(json!({ "approvers": { "users": ["a"] }, "timeout": "soon" }))
            .gate("g")
            .is_err());
        assert!(input(json!({ "approvers": { "users": ["a"] }, "timeout": 0 }))
            .gate("g")
            .is_err());
    }
}
