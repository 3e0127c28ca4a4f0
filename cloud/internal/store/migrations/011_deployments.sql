-- 011_deployments: OTA deployments (docs/api.md "Deployments"). A
-- deployment rolls one artifact version out to its members: the devices
-- it names and, while it runs, every device of its tag. The engine
-- (fleet/deployments_engine.go) moves it on from these rows alone, so any
-- replica may run it and a restart continues it; a replica works on a
-- deployment only while it holds the row's lock (FOR UPDATE SKIP LOCKED).
CREATE TABLE deployments (
    id                bigserial PRIMARY KEY,
    org_id            bigint NOT NULL REFERENCES orgs (id),
    -- NULL once the artifact is deleted: the deployment pauses.
    artifact_id       bigint REFERENCES artifacts (id) ON DELETE SET NULL,
    name              text NOT NULL,
    version           text NOT NULL,
    device_ids        text[] NOT NULL DEFAULT '{}',
    tag               text NOT NULL DEFAULT '',
    phases            int[] NOT NULL,
    max_in_flight     int NOT NULL CHECK (max_in_flight BETWEEN 1 AND 10000),
    failure_threshold int NOT NULL CHECK (failure_threshold BETWEEN 0 AND 100),
    max_attempts      int NOT NULL CHECK (max_attempts BETWEEN 1 AND 10),
    commit_timeout    int NOT NULL CHECK (commit_timeout BETWEEN 0 AND 86400),
    not_before        timestamptz NOT NULL,
    state             text NOT NULL CHECK (state IN ('scheduled', 'running', 'paused', 'aborted', 'completed')),
    phase             int NOT NULL DEFAULT 0,
    reason            text NOT NULL DEFAULT '',
    -- acked_failures: the final failures of the current phase an operator
    -- resumed past; the threshold trips again only on more.
    acked_failures    int NOT NULL DEFAULT 0,
    created_by        text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz
);

CREATE INDEX deployments_org ON deployments (org_id, id DESC);
CREATE INDEX deployments_live ON deployments (id) WHERE state IN ('scheduled', 'running', 'paused', 'aborted');

-- deployment_devices: one row per member. attempts counts the ota.update
-- calls made; the current one carries the update id dep-<deployment>-<attempts>,
-- and only reports of that id move the row. report_seq is the seq of the
-- last ota.status report applied, so no report is applied twice.
CREATE TABLE deployment_devices (
    deployment_id bigint NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    device_id     text NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    phase         int NOT NULL,
    status        text NOT NULL CHECK (status IN ('pending', 'sent', 'downloading', 'installing', 'awaiting_commit',
                                                  'succeeded', 'failed', 'rolled_back', 'aborted')),
    percent       int CHECK (percent BETWEEN 0 AND 100),
    reason        text NOT NULL DEFAULT '',
    attempts      int NOT NULL DEFAULT 0,
    retry_at      timestamptz,
    call_id       uuid,
    abort_call_id uuid,
    report_seq    bigint NOT NULL DEFAULT 0,
    -- resends counts the ota.update calls of the current attempt sent
    -- again (same id) after the answer to a delivered one was lost.
    resends       int NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deployment_id, device_id)
);

CREATE INDEX deployment_devices_device ON deployment_devices (device_id);

-- Reports are looked up by (device, update id).
CREATE INDEX ota_reports_update ON ota_reports (device_id, update_id, seq DESC);
