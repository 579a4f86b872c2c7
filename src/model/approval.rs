//! Approval gates: what an `approval:wait` step waits for, and the decision
//! that ends the wait. The store keeps an [`ApprovalState`] on the waiting
//! task (its typed waiting state); the engine hands the decision back to the
//! step when the task runs again.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Who may decide, and what they are told. Built by `approval:wait` from
/// its input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalGate {
    /// The waiting step.
    pub step_id: String,
    /// User entity refs (`user:default/alice`).
    #[serde(default)]
    pub users: Vec<String>,
    /// Group entity refs; a caller is in one when its Backstage token's
    /// ownership refs (`ent`) list it.
    #[serde(default)]
    pub groups: Vec<String>,
    /// A permission the permission backend must allow the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How long the step waits before it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// Whether the task's creator may approve it.
    #[serde(default)]
    pub allow_self_approval: bool,
}

impl ApprovalGate {
    /// `group:default/platform, user:default/alice, permission x` for log lines.
    pub fn approvers(&self) -> String {
        let mut parts: Vec<String> = self.groups.iter().chain(&self.users).cloned().collect();
        if let Some(permission) = &self.permission {
            parts.push(format!("holders of permission {permission}"));
        }
        parts.join(", ")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    Approved,
    Rejected,
    TimedOut,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approved => "approved",
            Verdict::Rejected => "rejected",
            Verdict::TimedOut => "timed out",
        }
    }
}

/// A decision on a gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalDecision {
    pub verdict: Verdict,
    /// Who decided (`None` for a timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub at: DateTime<Utc>,
}

/// What the store keeps on a task with a gate: the gate, when it times out,
/// and the decision once made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalState {
    pub gate: ApprovalGate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<ApprovalDecision>,
}

impl ApprovalState {
    /// The decision the step gets when its task runs again: the one made,
    /// or a timeout once the deadline has passed.
    pub fn effective_decision(&self, now: DateTime<Utc>) -> Option<ApprovalDecision> {
        if let Some(decision) = &self.decision {
            return Some(decision.clone());
        }
        match self.deadline {
            Some(deadline) if deadline <= now => Some(ApprovalDecision {
                verdict: Verdict::TimedOut,
                by: None,
                comment: None,
                at: now,
            }),
            _ => None,
        }
    }
}
