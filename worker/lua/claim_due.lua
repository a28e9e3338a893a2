-- Claim due targets: return those due by ARGV[1] and push each one's due time to ARGV[2] (a lease), so that a
-- second scheduler does not dispatch them again, and a dispatched drain that never runs (lost message, dead
-- worker) is dispatched again when the lease ends.
-- Once the intake has gone quiet (its recent-marker expired) the claim reaches ARGV[4] seconds further ahead,
-- once per quiet spell: partial batches waiting out their flush interval go now, as nothing more is coming
-- to fill them. The drain agrees by the same marker (worker.drain).
-- KEYS: ready index, intake-recent marker, quiet-swept marker.
-- ARGV: now, lease end, most targets to claim, quiet reach (s; 0 = never reach ahead).
local horizon = tonumber(ARGV[1])
local sweeping = false
if tonumber(ARGV[4]) > 0 and redis.call('EXISTS', KEYS[2]) == 0 and redis.call('EXISTS', KEYS[3]) == 0 then
  horizon = horizon + tonumber(ARGV[4])
  sweeping = true
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%.17g', horizon), 'LIMIT', 0,
                       tonumber(ARGV[3]))
for _, target in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], target)
end
-- A sweep cut short by the limit goes on at the next claim.
if sweeping and #due < tonumber(ARGV[3]) then
  redis.call('SET', KEYS[3], 1)
end
return due
