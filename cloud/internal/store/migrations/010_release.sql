-- 010_release: each organisation's release repository, the TUF metadata
-- its devices verify updates against (pkg/release, docs/security.md).
-- root and targets are signed by the operator's offline keys and uploaded;
-- snapshot and timestamp are signed by the cloud's online keys when an
-- upload is accepted and re-signed before they expire. Every root version
-- ever accepted is kept in release_roots: a device pinned to an older
-- root fetches N.root.json for each version after it.
CREATE TABLE release_repos (
    org_id     bigint PRIMARY KEY REFERENCES orgs (id),
    root       bytea NOT NULL,
    targets    bytea,
    snapshot   bytea,
    timestamp  bytea,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE release_roots (
    org_id      bigint NOT NULL REFERENCES orgs (id),
    version     bigint NOT NULL CHECK (version > 0),
    body        bytea NOT NULL,
    accepted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, version)
);
