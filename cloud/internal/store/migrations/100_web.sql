-- 100_web: the dashboard's own tables (web sessions, login throttling) and
-- the indexes its pages need to stay fast with 10,000 devices.
-- Files numbered 100 and up belong to the dashboard (package web).

CREATE TABLE web_sessions (
    -- id_hash is the SHA-256 of the cookie's secret; the secret itself is
    -- never stored, so a copy of this table logs nobody in.
    id_hash    bytea PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- role and pw_tag are the user's role and the SHA-256 of the user's
    -- password hash at login: when either changes (by anyone, the CLI
    -- included) the session no longer matches and is over.
    role       text NOT NULL,
    pw_tag     bytea NOT NULL,
    -- csrf_token goes into every form and htmx request of the session.
    csrf_token text NOT NULL,
    -- view_org is the organisation a super user is looking at (NULL: all).
    view_org   bigint REFERENCES orgs (id) ON DELETE SET NULL,
    remote_ip  text NOT NULL DEFAULT '',
    user_agent text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE INDEX web_sessions_user ON web_sessions (user_id);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);

-- web_login_failures counts failed logins per email and per client address
-- over a sliding window; every replica sees the same counts.
CREATE TABLE web_login_failures (
    id        bigserial PRIMARY KEY,
    email     text NOT NULL,
    remote_ip text NOT NULL,
    at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX web_login_failures_email ON web_login_failures (email, at);
CREATE INDEX web_login_failures_ip ON web_login_failures (remote_ip, at);

-- The devices page filters by status and pages by id within an organisation;
-- the current key set of each listed device is found by device_id.
CREATE INDEX web_devices_org_status ON devices (org_id, status, id);
CREATE INDEX web_devices_status ON devices (status, id);
CREATE INDEX web_device_keys_device ON device_keys (device_id, id);
CREATE INDEX web_users_org ON users (org_id, email);
-- The pending keys page lists pending key sets, newest first.
CREATE INDEX web_device_keys_pending ON device_keys (first_seen DESC) WHERE status = 'pending';
