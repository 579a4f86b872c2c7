-- The step journal: what each finished step (and each `each` iteration)
-- produced, so that a recovered or retried task resumes from the first
-- unfinished step with the recorded outputs.
CREATE TABLE task_steps (
    task_id     uuid        NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    step_key    text        NOT NULL,
    output      json        NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, step_key)
);
