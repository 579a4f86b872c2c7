-- Tasks and their event log. Every task and every log line lives here so that
-- any replica can serve them and nothing is lost on restart.
-- JSON columns are `json`, not `jsonb`: the API returns specs and event
-- bodies with their keys in the order they were written, as Backstage does.
CREATE TABLE tasks (
    id               uuid PRIMARY KEY,
    spec             json        NOT NULL,
    secrets          json,
    status           text        NOT NULL DEFAULT 'open'
                     CHECK (status IN ('open', 'processing', 'completed', 'failed', 'cancelled')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_by       text,
    last_heartbeat_at timestamptz,
    -- The lease: the replica that runs the task and until when it may do so
    -- without renewing. Another replica may take the task over after expiry.
    lease_owner      text,
    lease_expires_at timestamptz,
    cancel_requested boolean     NOT NULL DEFAULT false,
    attempts         integer     NOT NULL DEFAULT 0
);

-- Claim order (open tasks oldest first) and the status filter of the list.
CREATE INDEX tasks_status_created_at_idx ON tasks (status, created_at);
-- The unfiltered list, newest first.
CREATE INDEX tasks_created_at_idx ON tasks (created_at DESC);
-- "Owned" task lists.
CREATE INDEX tasks_created_by_idx ON tasks (created_by, created_at DESC);
-- Expired leases of running tasks.
CREATE INDEX tasks_lease_idx ON tasks (lease_expires_at) WHERE status = 'processing';

CREATE TABLE task_events (
    id          bigserial   PRIMARY KEY,
    task_id     uuid        NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    event_type  text        NOT NULL
                CHECK (event_type IN ('log', 'completion', 'cancelled', 'recovered')),
    body        json        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Reading a task's events after a given id.
CREATE INDEX task_events_task_id_id_idx ON task_events (task_id, id);
