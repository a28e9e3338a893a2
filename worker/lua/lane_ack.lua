-- Acknowledge a finished lane plan: per target, trim its stream up to what the plan consumed, lower its pending
-- count, and set its due time in the lane's due set from what is left (removed when nothing is); then lower
-- the fleet-wide backlog and drop the plan. Fenced by the lock token so a drainer that lost its lock cannot
-- acknowledge anything. Atomic, like the producer's enqueue.lua, so an entry appended meanwhile always leaves
-- its target due.
-- KEYS: lock, plan, backlog, lane due set, then per target: its stream, its pending count.
-- ARGV: token, now (epoch s), batch size, flush interval (s), then one argument: per target, its name, the
-- least stream id to keep and the operations consumed, separated by spaces (none of them holds one). One
-- argument rather than three per target: for thousands of targets the client's per-argument cost dominates.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local now, batch_size, flush = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local fields = {}
for word in string.gmatch(ARGV[5] or '', '%S+') do fields[#fields + 1] = word end
local targets = (#KEYS - 4) / 2
--#include slices
-- Every counter is read with one MGET and the lowered ones written with one MSET (in slices) rather than a DECRBY
-- each: the same decrement inside this atomic script, and a command
-- called from Lua costs more than its own work when a plan spans thousands of targets. The targets of a plan
-- are distinct, so no counter is lowered twice.
local counters = {}
for i = 1, targets do counters[i] = KEYS[4 + 2 * i] end
local counts = mget(counters)
local counts_out = {}  -- counter, count left, counter, count left, ...
local total = 0
local gone, again = {}, {}  -- targets whose stream is now empty; (due time, target) of those with work left
for i = 1, targets do
  local stream = KEYS[3 + 2 * i]
  local name, keep, ops = fields[3 * i - 2], fields[3 * i - 1], tonumber(fields[3 * i])
  local left = tonumber(counts[i] or '0')
  if ops > 0 then
    redis.call('XTRIM', stream, 'MINID', keep)
    left = math.max(0, left - ops)  -- never below nothing: a counter lost or reset must not go negative
    counts_out[#counts_out + 1] = counters[i]
    counts_out[#counts_out + 1] = left
    total = total + ops
  end
  -- Its first entry left, if any; XLEN first, as a plan nearly always takes all there was.
  local head = redis.call('XLEN', stream) > 0 and redis.call('XRANGE', stream, '-', '+', 'COUNT', 1) or {}
  if #head == 0 then
    gone[#gone + 1] = name
  else
    local id = head[1][1]
    local ms = tonumber(string.sub(id, 1, string.find(id, '-', 1, true) - 1))
    local due = ms / 1000 + flush
    if left >= batch_size then due = 0 end
    again[#again + 1] = string.format('%.17g', due)
    again[#again + 1] = name
  end
end
call_sliced('MSET', counts_out)
-- One ZREM and one ZADD for all the targets rather than one command each.
call_sliced('ZREM', gone, KEYS[4])
call_sliced('ZADD', again, KEYS[4])
redis.call('DEL', KEYS[2])
if total > 0 then redis.call('DECRBY', KEYS[3], total) end
return total
