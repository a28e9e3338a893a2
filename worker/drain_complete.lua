-- Acknowledge a finished plan: trim the stream up to the plan's position, lower the pending count and the
-- fleet-wide backlog, drop the plan. Fenced by the lock token so a drainer that lost its lock cannot
-- acknowledge anything.
-- KEYS: lock, stream, pending count, plan, backlog. ARGV: token, min id to keep, operations consumed.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('XTRIM', KEYS[2], 'MINID', ARGV[2])
local left = redis.call('DECRBY', KEYS[3], ARGV[3])
if left < 0 then
  redis.call('SET', KEYS[3], 0)
  left = 0
end
redis.call('DEL', KEYS[4])
redis.call('DECRBY', KEYS[5], ARGV[3])
return left
