-- 005_key_decisions: when a key set was rejected and by whom, so that the
-- dashboard can list rejected keys with the decision (an operator may
-- accept a rejected key again). Rows rejected before this migration have
-- rejected_at NULL: the decision is older than the record.

ALTER TABLE device_keys
    ADD COLUMN rejected_at timestamptz,
    ADD COLUMN rejected_by text NOT NULL DEFAULT '';

-- The pending page lists rejected key sets, newest decision first.
CREATE INDEX device_keys_rejected ON device_keys (rejected_at DESC NULLS LAST, id DESC) WHERE status = 'rejected';
