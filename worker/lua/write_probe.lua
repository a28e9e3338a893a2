-- Readiness: a write Redis must accept (or refuse for lack of memory, or as a replica) that changes nothing:
-- ZADD XX of a member never added. KEYS[1] the ready index; ARGV[1] the probe's target name.
return redis.call('ZADD', KEYS[1], 'XX', 0, ARGV[1])
