-- Append operations: per target one stream entry and a pending-count increment, the target marked due in the
-- ready index (one flush interval out, or now once it holds a full batch) and known in the targets set; then
-- the backlog. One script call instead of ~3 commands per target: the client's per-command packing and reply
-- parsing cost more than Redis's own work here.
-- KEYS: ready index, targets set, backlog, then per target: its stream, its pending counter.
-- ARGV: due time, entry field name, batch size, then per target: its name, its operation count, its entry.
-- Returns the backlog after the append.
local due, field, batch_size = ARGV[1], ARGV[2], tonumber(ARGV[3])
local total = 0
for i = 1, (#KEYS - 3) / 2 do
  local name, ops, entry = ARGV[3 * i + 1], tonumber(ARGV[3 * i + 2]), ARGV[3 * i + 3]
  redis.call('XADD', KEYS[2 + 2 * i], '*', field, entry)
  local pending = redis.call('INCRBY', KEYS[3 + 2 * i], ops)
  -- LT keeps an earlier due time: the oldest waiting operation sets the pace; a full batch is due at once.
  redis.call('ZADD', KEYS[1], 'LT', pending >= batch_size and 0 or due, name)
  redis.call('SADD', KEYS[2], name)
  total = total + ops
end
return redis.call('INCRBY', KEYS[3], total)
