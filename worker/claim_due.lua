-- Claim due targets: return those due by ARGV[1] and push each one's due time to ARGV[2] (a lease), so that a
-- second scheduler does not dispatch them again, and a dispatched drain that never runs (lost message, dead
-- worker) is dispatched again when the lease ends.
-- KEYS[1]: ready index. ARGV: now, lease end, most targets to claim.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, target in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], target)
end
return due
