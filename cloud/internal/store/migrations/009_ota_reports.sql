-- 009_ota_reports: the ota.status reports of devices (docs/protocol.md
-- §9.7). seq grows with every report of a device and survives its
-- restarts, so (device_id, seq) names a report: one the bridge's outbox
-- sends again after a lost answer is stored once.
CREATE TABLE ota_reports (
    device_id   text NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    seq         bigint NOT NULL CHECK (seq > 0),
    org_id      bigint NOT NULL REFERENCES orgs (id),
    update_id   text NOT NULL,
    target      text NOT NULL,
    status      text NOT NULL CHECK (status IN ('downloading', 'installing', 'awaiting_commit', 'succeeded', 'failed', 'rolled_back')),
    percent     int CHECK (percent BETWEEN 0 AND 100),
    reason      text NOT NULL DEFAULT '',
    slot        text NOT NULL DEFAULT '',
    reported_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, seq)
);
