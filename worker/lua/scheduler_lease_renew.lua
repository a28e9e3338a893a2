-- Extend (or take back, after it ran out) the scheduler's lease only while this holder's id is in it.
-- KEYS[1] the lease; ARGV[1] the holder's id, ARGV[2] the lease's time to live in ms.
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] or held == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
