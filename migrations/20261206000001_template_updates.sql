-- Template versions and fleet updates.
--
-- `template_versions` keeps every version of a template a task ran, keyed by
-- its content digest (`sha256:<hex>` of a canonical tar of the template
-- directory), so an update can render the version a repository was generated
-- from even after the directory changed. The tar is stored as it is:
-- PostgreSQL compresses large values itself (TOAST).
CREATE TABLE template_versions (
    digest       text        PRIMARY KEY,
    template_ref text        NOT NULL,
    archive      bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- What a task was created from: written with the task, read by the worker
-- (the runner writes it into the repository as `.scaffolder/answers.yaml`
-- before each publish step) and by fleet updates to find repositories.
CREATE TABLE task_answers (
    task_id      uuid  PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    template_ref text  NOT NULL,
    version      text  NOT NULL REFERENCES template_versions (digest),
    -- The values parameter `repoUrl`, when the template has one.
    repo_url     text,
    -- The answers file, as written into the repository.
    answers      text  NOT NULL
);
CREATE INDEX task_answers_template ON task_answers (template_ref);

-- A fleet update: one run per request, one item per repository.
CREATE TABLE update_runs (
    id               uuid        PRIMARY KEY,
    template_ref     text        NOT NULL,
    -- The version the run updates to.
    version          text        NOT NULL REFERENCES template_versions (digest),
    -- `dryRun`, `set` values, concurrency: what a retry runs with again.
    options          json        NOT NULL,
    status           text        NOT NULL,
    cancel_requested boolean     NOT NULL DEFAULT false,
    created_by       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);

CREATE TABLE update_items (
    run_id       uuid        NOT NULL REFERENCES update_runs (id) ON DELETE CASCADE,
    repo_url     text        NOT NULL,
    -- The order repositories were listed in.
    position     integer     NOT NULL,
    status       text        NOT NULL,
    -- The version the repository's answers file named.
    from_version text,
    -- Where the change went: the pull request or the branch.
    proposal     text,
    files        json        NOT NULL DEFAULT '[]',
    conflicts    json        NOT NULL DEFAULT '[]',
    diff         text,
    body         text,
    error        text,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, repo_url)
);
