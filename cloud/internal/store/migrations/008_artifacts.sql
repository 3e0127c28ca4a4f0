-- 008_artifacts: OTA artifacts. A row names bytes the cloud keeps on disk,
-- content-addressed by sha256 (<data-dir>/artifacts/sha256/<hex>): several
-- rows may name the same bytes, which are stored once and removed with
-- the last row naming them. metadata is the release's signed TUF
-- targets.json as uploaded, stored and not interpreted here.

CREATE TABLE artifacts (
    id          bigserial PRIMARY KEY,
    org_id      bigint NOT NULL REFERENCES orgs (id),
    name        text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    version     text NOT NULL CHECK (length(version) BETWEEN 5 AND 128),
    sha256      bytea NOT NULL CHECK (length(sha256) = 32),
    length      bigint NOT NULL CHECK (length >= 0),
    metadata    jsonb,
    uploaded_by text NOT NULL,
    uploaded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT artifacts_org_name_version UNIQUE (org_id, name, version)
);

CREATE INDEX artifacts_sha256 ON artifacts (sha256);

-- ota_download_keys holds the HMAC key of device download tokens, made
-- by the first replica that needs it and shared by all (one row).
-- Deleting the row (and restarting the replicas, which cache it)
-- invalidates every token handed out; the next one made
-- makes a new key.
CREATE TABLE ota_download_keys (
    id         smallint PRIMARY KEY CHECK (id = 1),
    key        bytea NOT NULL CHECK (length(key) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
