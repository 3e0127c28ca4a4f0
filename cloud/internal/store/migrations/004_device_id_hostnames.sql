-- 004_device_id_hostnames: a device id may be a host name (pi.kitchen.local).
-- The rule is rpcproto.DeviceIDPattern and rpcproto.DeviceIDMaxLen (see
-- docs/protocol.md §6.3); store's TestDeviceIDCheckMatchesGo holds the two
-- to the same answers. It admits every id the old rule did, so existing rows
-- stay valid. NATS subjects never carry the id raw (fleet.DeviceToken).
ALTER TABLE devices DROP CONSTRAINT devices_id_check;
ALTER TABLE devices ADD CONSTRAINT devices_id_check
    CHECK (length(id) <= 253 AND id ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}(\.[A-Za-z0-9][A-Za-z0-9_-]{0,63})*$');
