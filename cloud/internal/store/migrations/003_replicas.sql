-- 003_replicas: what the replica janitor needs (see store.EndStaleSessions).
-- A replica's devices are found by replica name among the online ones, so
-- that ending the sessions of a dead replica, every second on every
-- replica, reads only the rows it changes.
CREATE INDEX devices_online_replica ON devices (replica) WHERE online;
