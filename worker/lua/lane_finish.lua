-- End a lane's drain: leave the lane in the ready index exactly when it has work, due when it should run, then
-- release the lock. Removing first and then looking closes the race with the producer, which marks its target
-- and lane due after writing its entry: whichever order they interleave in, new work leaves the lane marked.
-- KEYS: ready index, lock, lane due set, plan, replay queue.
-- ARGV: lane, lock token, now (epoch s), not before (epoch s; 0: as the work says).
redis.call('ZREM', KEYS[1], ARGV[1])
local now, not_before = tonumber(ARGV[3]), tonumber(ARGV[4])
local due = nil
if redis.call('EXISTS', KEYS[4], KEYS[5]) > 0 then
  due = now
else
  local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  if #first > 0 then due = math.max(tonumber(first[2]), now) end
end
if due then
  redis.call('ZADD', KEYS[1], string.format('%.17g', math.max(due, not_before)), ARGV[1])
end
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
return 1
