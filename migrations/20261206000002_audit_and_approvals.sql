-- The audit trail: one row per security-relevant event (who did what to
-- which task or resource, with what outcome), written in the same
-- transaction as the change it records. Never holds secrets: `meta` carries
-- ids, refs and counts only. `id` is the keyset for paging.
CREATE TABLE audit_events (
    id          bigserial   PRIMARY KEY,
    event_id    text        NOT NULL,
    action_type text,
    severity    text        NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    status      text        NOT NULL CHECK (status IN ('succeeded', 'failed')),
    actor       text,
    task_id     uuid,
    target      text,
    request_id  text,
    meta        json        NOT NULL DEFAULT '{}',
    error       text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX audit_events_created_at_idx ON audit_events (created_at, id);
CREATE INDEX audit_events_actor_idx ON audit_events (actor, id);
CREATE INDEX audit_events_task_idx ON audit_events (task_id, id) WHERE task_id IS NOT NULL;

-- Approval gates: a task whose `approval:wait` step waits keeps status
-- `processing` (what Backstage's task page understands) but holds no lease:
-- `approval` is the typed waiting state (step, approvers, message, decision
-- once made), `approval_deadline` when the wait times out. A decision
-- re-opens the task; a worker that claims it resumes at the waiting step.
ALTER TABLE tasks ADD COLUMN approval json;
ALTER TABLE tasks ADD COLUMN approval_deadline timestamptz;
CREATE INDEX tasks_approval_deadline_idx ON tasks (approval_deadline)
    WHERE status = 'processing' AND lease_owner IS NULL;
