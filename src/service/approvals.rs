//! Deciding approval gates: who may approve or reject a waiting task, and
//! the decision written with its log line and audit event.

use chrono::Utc;

use super::audit::{event_of, failed_of};
use super::{ServiceError, TaskService};
use crate::auth::Caller;
use crate::model::approval::{ApprovalDecision, ApprovalGate, ApprovalState, Verdict};
use crate::model::audit::AuditKind;
use crate::model::{NewEvent, TaskId};

/// Longest comment a decision may carry.
pub const MAX_COMMENT_CHARS: usize = 2000;

/// What a decision did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalAnswer {
    pub task_id: TaskId,
    pub step_id: String,
    pub verdict: Verdict,
}

/// Why `caller` may decide on `gate` of a task created by `created_by`, or
/// why not.
pub(super) fn may_decide(caller: &Caller, gate: &ApprovalGate, created_by: Option<&str>) -> Result<String, String> {
    let Some(subject) = caller.subject() else {
        return Err("anonymous callers cannot decide on approvals".into());
    };
    if !gate.allow_self_approval && created_by == Some(subject) {
        return Err(format!(
            "{subject} created this task and cannot approve or reject it (the step does not set allowSelfApproval)"
        ));
    }
    if gate.users.iter().any(|u| u.eq_ignore_ascii_case(subject)) {
        return Ok(format!("listed as approver {subject}"));
    }
    if let Some(group) = gate
        .groups
        .iter()
        .find(|g| caller.ownership().iter().any(|o| o.eq_ignore_ascii_case(g)))
    {
        return Ok(format!("member of {group}"));
    }
    Err(format!(
        "{subject} is not among the approvers of this step ({})",
        gate.approvers()
    ))
}

impl TaskService {
    /// Approves or rejects the gate task `id` waits at, as `caller`.
    pub async fn decide(
        &self,
        caller: &Caller,
        id: &str,
        verdict: Verdict,
        comment: Option<String>,
    ) -> Result<ApprovalAnswer, ServiceError> {
        let kind = match verdict {
            Verdict::Approved => AuditKind::ApprovalGiven,
            _ => AuditKind::ApprovalRefused,
        };
        let result = self.decide_unrecorded(caller, id, verdict, comment).await;
        match &result {
            // Written with the decision.
            Ok(_) => result,
            Err(e) => {
                let mut event = failed_of(caller, kind, e);
                event = match TaskId::parse(id) {
                    Some(t) => event.task(t),
                    None => event.target(id),
                };
                self.audit.record(&event).await?;
                if let ServiceError::Forbidden(_) = e {
                    let mut denied = failed_of(caller, AuditKind::PermissionDenied, e).meta("operation", kind.name());
                    if let Some(t) = TaskId::parse(id) {
                        denied = denied.task(t);
                    }
                    self.audit.record(&denied).await?;
                }
                result
            }
        }
    }

    async fn decide_unrecorded(
        &self,
        caller: &Caller,
        id: &str,
        verdict: Verdict,
        comment: Option<String>,
    ) -> Result<ApprovalAnswer, ServiceError> {
        let not_found = || ServiceError::NotFound(format!("No task with id '{id}' found"));
        let task_id = TaskId::parse(id).ok_or_else(not_found)?;
        let comment = comment.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty());
        if comment.as_ref().is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS) {
            return Err(ServiceError::Input(format!(
                "request/body/comment must NOT have more than {MAX_COMMENT_CHARS} characters"
            )));
        }
        let Some(waiting) = self.store.waiting_task(task_id).await? else {
            let task = self.store.get_task(task_id).await?.ok_or_else(not_found)?;
            if !caller.may_see(task.created_by.as_deref()) {
                return Err(not_found());
            }
            return Err(ServiceError::Conflict(format!(
                "Task {id} is not waiting for approval (it is {})",
                task.status
            )));
        };
        let gate = &waiting.approval.gate;
        let why = match may_decide(caller, gate, waiting.task.created_by.as_deref()) {
            Ok(why) => why,
            // Not a listed user or group member: a permission may still make
            // the caller an approver (never the requester, unless allowed).
            Err(refusal) => match &gate.permission {
                Some(permission)
                    if !refusal.contains("created this task") && self.allows_named(caller, permission).await? =>
                {
                    format!("allowed {permission}")
                }
                _ => return Err(ServiceError::Forbidden(refusal)),
            },
        };
        let by = caller.subject().unwrap_or_default().to_owned();
        let decided = ApprovalState {
            decision: Some(ApprovalDecision {
                verdict,
                by: Some(by.clone()),
                comment: comment.clone(),
                at: Utc::now(),
            }),
            ..waiting.approval.clone()
        };
        let line = match &comment {
            Some(c) => format!("{} by {by}: {c}", capitalized(verdict)),
            None => format!("{} by {by}", capitalized(verdict)),
        };
        let kind = match verdict {
            Verdict::Approved => AuditKind::ApprovalGiven,
            _ => AuditKind::ApprovalRefused,
        };
        let mut audit = event_of(caller, kind)
            .task(task_id)
            .meta("stepId", gate.step_id.clone())
            .meta("reason", why);
        if let Some(c) = &comment {
            audit = audit.meta("comment", c.clone());
        }
        let events = [NewEvent::step_log(&gate.step_id, line)];
        if !self.store.decide_approval(task_id, &decided, &events, &audit).await? {
            return Err(ServiceError::Conflict(format!(
                "Task {id} is no longer waiting for this decision (someone decided first, or it was cancelled)"
            )));
        }
        tracing::info!(task_id = %task_id, step = %gate.step_id, by = %by, verdict = verdict.as_str(), "approval decided");
        Ok(ApprovalAnswer {
            task_id,
            step_id: gate.step_id.clone(),
            verdict,
        })
    }
}

fn capitalized(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Approved => "Approved",
        Verdict::Rejected => "Rejected",
        Verdict::TimedOut => "Timed out",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Identity;

    fn user(entity_ref: &str, groups: &[&str]) -> Caller {
        Caller {
            identity: Identity::User {
                entity_ref: entity_ref.into(),
                ownership: std::iter::once(entity_ref)
                    .chain(groups.iter().copied())
                    .map(str::to_owned)
                    .collect(),
                token: "t".into(),
            },
            sees_all: false,
            request_id: None,
        }
    }

    fn gate(allow_self: bool) -> ApprovalGate {
        ApprovalGate {
            step_id: "gate".into(),
            users: vec!["user:default/carol".into()],
            groups: vec!["group:default/platform".into()],
            permission: None,
            message: None,
            timeout_seconds: None,
            allow_self_approval: allow_self,
        }
    }

    #[test]
    fn approvers_are_listed_users_and_group_members_but_not_the_requester() {
        let requester = Some("user:default/alice");
        assert!(may_decide(
            &user("user:default/bob", &["group:default/platform"]),
            &gate(false),
            requester
        )
        .is_ok());
        assert!(may_decide(&user("user:default/carol", &[]), &gate(false), requester).is_ok());
        let outsider = may_decide(
            &user("user:default/dave", &["group:default/web"]),
            &gate(false),
            requester,
        );
        assert!(outsider.unwrap_err().contains("not among the approvers"));
        let own = user("user:default/alice", &["group:default/platform"]);
        assert!(may_decide(&own, &gate(false), requester)
            .unwrap_err()
            .contains("cannot approve"));
        assert!(may_decide(&own, &gate(true), requester).is_ok());
        assert!(may_decide(&Caller::anonymous(), &gate(true), requester).is_err());
    }
}
