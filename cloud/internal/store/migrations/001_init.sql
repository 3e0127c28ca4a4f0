-- 001_init: organisations, users, API tokens, devices and their key sets,
-- calls, the audit log and the replica heartbeat table.

CREATE TABLE orgs (
    id               bigserial PRIMARY KEY,
    name             text NOT NULL UNIQUE,
    -- enrollment_token, when set, lets a device join this org by naming it
    -- in registration.register. NULL: devices join only via the default org.
    enrollment_token text UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now()
);

INSERT INTO orgs (name) VALUES ('default');

CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    org_id        bigint NOT NULL REFERENCES orgs (id),
    email         text NOT NULL UNIQUE,
    role          text NOT NULL CHECK (role IN ('super', 'admin', 'operator', 'viewer')),
    -- password_hash is an argon2id PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
    password_hash text NOT NULL,
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id         bigserial PRIMARY KEY,
    org_id     bigint NOT NULL REFERENCES orgs (id),
    user_id    bigint NOT NULL REFERENCES users (id),
    name       text NOT NULL DEFAULT '',
    -- hash is the SHA-256 of the whole secret ("bsn_..."); the secret itself
    -- is shown once and never stored.
    hash       bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used  timestamptz,
    revoked    boolean NOT NULL DEFAULT false
);

CREATE TABLE devices (
    -- id is globally unique and a safe NATS subject token.
    id              text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$'),
    org_id          bigint NOT NULL REFERENCES orgs (id),
    -- status is derived from the key sets (see store.refreshStatus):
    -- pending|accepted|rejected|preauthorized|decommissioned.
    status          text NOT NULL,
    decommissioned  boolean NOT NULL DEFAULT false,
    tags            text[] NOT NULL DEFAULT '{}',
    attributes      jsonb NOT NULL DEFAULT '{}',
    inventory       jsonb,
    online          boolean NOT NULL DEFAULT false,
    replica         text NOT NULL DEFAULT '',
    -- session_version grows by one for every session that starts; the holder
    -- of an older version has been evicted.
    session_version bigint NOT NULL DEFAULT 0,
    first_seen      timestamptz NOT NULL DEFAULT now(),
    last_seen       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX devices_org ON devices (org_id, id);
CREATE INDEX devices_tags ON devices USING gin (tags);

CREATE TABLE device_keys (
    id          bigserial PRIMARY KEY,
    device_id   text NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    public_key  bytea NOT NULL,
    fingerprint text NOT NULL,
    alg         text NOT NULL,
    status      text NOT NULL CHECK (status IN ('pending', 'accepted', 'rejected', 'preauthorized', 'revoked')),
    key_changed boolean NOT NULL DEFAULT false,
    attributes  jsonb NOT NULL DEFAULT '{}',
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (device_id, fingerprint)
);

CREATE TABLE calls (
    id           uuid PRIMARY KEY,
    -- seq orders the calls of a device: queued calls are delivered by seq.
    seq          bigserial NOT NULL UNIQUE,
    org_id       bigint NOT NULL REFERENCES orgs (id),
    device_id    text NOT NULL,
    method       text NOT NULL,
    params       jsonb,
    status       text NOT NULL CHECK (status IN ('queued', 'sent', 'delivered', 'succeeded', 'failed', 'timeout', 'expired')),
    result       jsonb,
    error        jsonb,
    actor        text NOT NULL,
    timeout_ms   bigint NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz,
    delivered_at timestamptz,
    finished_at  timestamptz,
    -- expires_at: a queued call not sent by then expires (NULL: not persistent).
    expires_at   timestamptz,
    -- deadline: a sent or delivered call not answered by then timed out.
    deadline     timestamptz
);

CREATE INDEX calls_device ON calls (device_id, seq);
CREATE INDEX calls_queued ON calls (device_id, seq) WHERE status = 'queued';
CREATE INDEX calls_open ON calls (deadline) WHERE status IN ('sent', 'delivered');
CREATE INDEX calls_org ON calls (org_id, seq);

CREATE TABLE audit_log (
    id      bigserial PRIMARY KEY,
    org_id  bigint NOT NULL,
    actor   text NOT NULL,
    action  text NOT NULL,
    target  text NOT NULL DEFAULT '',
    outcome text NOT NULL,
    detail  jsonb,
    at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX audit_org ON audit_log (org_id, id);

CREATE TABLE replicas (
    name       text PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat  timestamptz NOT NULL DEFAULT now()
);
