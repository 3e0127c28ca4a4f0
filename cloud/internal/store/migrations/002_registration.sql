-- 002_registration: what bounded registration and pruning need (see
-- store.Admit and store.PrunePending).

ALTER TABLE devices
    -- first_addr is the source address of the registration that created
    -- the row (or, for a preauthorised device, its first registration);
    -- new never-reviewed rows are counted per address and hour.
    ADD COLUMN first_addr text NOT NULL DEFAULT '',
    -- last_addr is the source address of the newest admitted registration,
    -- that is of the live session when the device is online.
    ADD COLUMN last_addr text NOT NULL DEFAULT '',
    -- session_key_id is the key set the newest admitted registration
    -- presented: the live session's key when the device is online. No
    -- foreign key: a pruned key set leaves a dangling id, read as unknown.
    ADD COLUMN session_key_id bigint,
    -- pending_admitted_at is set when a registration is admitted as
    -- pending and cleared when its session starts or ends, so that an
    -- admission counts as a live pending session before the session is
    -- marked online (concurrent registrations cannot overshoot a limit).
    ADD COLUMN pending_admitted_at timestamptz;

-- Live pending sessions, per organisation and per address.
CREATE INDEX devices_live_org ON devices (org_id) WHERE online OR pending_admitted_at IS NOT NULL;
CREATE INDEX devices_live_addr ON devices (last_addr) WHERE online OR pending_admitted_at IS NOT NULL;
-- New rows per address and hour.
CREATE INDEX devices_first_addr ON devices (first_addr, first_seen);
-- Pruning of stale pending key sets and devices.
CREATE INDEX device_keys_pending_seen ON device_keys (last_seen) WHERE status = 'pending';
CREATE INDEX devices_pending_seen ON devices (last_seen) WHERE status = 'pending';
