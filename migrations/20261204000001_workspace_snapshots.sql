-- The durable workspace: what the finished steps of a task left in its
-- workspace, so that a retry or a takeover on another replica starts the
-- first unfinished step on exactly those files.
--
-- `task_workspaces` holds one manifest per task (every path, its kind, mode
-- and the blob holding its contents), written in the same transaction as the
-- step journal entry it belongs to. `task_workspace_blobs` holds file
-- contents, one row per distinct content, written before the manifest that
-- refers to them. Both are sealed with the task-secrets keyring (the task id
-- is the associated data): rendered files can hold secret material.
CREATE TABLE task_workspaces (
    task_id   uuid        PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    manifest  bytea       NOT NULL,
    -- Plaintext bytes and files the manifest describes (for limits and metrics).
    bytes     bigint      NOT NULL,
    files     integer     NOT NULL,
    saved_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE task_workspace_blobs (
    task_id   uuid  NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    blob_key  uuid  NOT NULL,
    data      bytea NOT NULL,
    PRIMARY KEY (task_id, blob_key)
);
