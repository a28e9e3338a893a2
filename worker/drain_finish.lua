-- End a drain: leave the target in the ready index exactly when there is work left, due when it should run,
-- then release the lock. Removing first and then looking closes the race with the producer, which writes its
-- entry before it marks the target: whichever order they interleave in, a new entry leaves the target marked.
-- KEYS: ready index, lock, pending count, stream, plan, replay queue.
-- ARGV: target, lock token, now (epoch s), batch size, flush interval (s).
redis.call('ZREM', KEYS[1], ARGV[1])
local head = redis.call('XRANGE', KEYS[4], '-', '+', 'COUNT', 1)
local unfinished = redis.call('EXISTS', KEYS[5], KEYS[6])
if #head > 0 or unfinished > 0 then
  local now = tonumber(ARGV[3])
  local due = now
  if unfinished == 0 and tonumber(redis.call('GET', KEYS[3]) or '0') < tonumber(ARGV[4]) then
    local id = head[1][1]
    local ms = tonumber(string.sub(id, 1, string.find(id, '-', 1, true) - 1))
    due = math.max(ms / 1000 + tonumber(ARGV[5]), now)
  end
  redis.call('ZADD', KEYS[1], string.format('%.17g', due), ARGV[1])
end
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
return 1
