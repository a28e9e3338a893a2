-- Append one intake request's operations: per target one stream entry and a pending-count increment, then the
-- ready index, the set of targets and the backlog. One script call instead of ~3 commands per target: the
-- client's per-command packing and reply parsing cost more than Redis's own work here.
-- KEYS: ready index, targets set, backlog, then per target: its stream, its pending counter.
-- ARGV: due time, entry field name, then per target: its name, its operation count, its packed entry.
-- Returns each target's pending count after the append, in argument order.
local due, field = ARGV[1], ARGV[2]
local counts = {}
local total = 0
local n = (#KEYS - 3) / 2
for i = 1, n do
  local name, ops, entry = ARGV[3 * i], tonumber(ARGV[3 * i + 1]), ARGV[3 * i + 2]
  redis.call('XADD', KEYS[2 + 2 * i], '*', field, entry)
  counts[i] = redis.call('INCRBY', KEYS[3 + 2 * i], ops)
  -- LT keeps an earlier due time: the oldest waiting operation sets the pace.
  redis.call('ZADD', KEYS[1], 'LT', due, name)
  redis.call('SADD', KEYS[2], name)
  total = total + ops
end
redis.call('INCRBY', KEYS[3], total)
return counts
