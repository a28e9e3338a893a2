-- Append operations: per target one stream entry and a pending-count increment, the target marked due in its
-- lane's due set (one flush interval out, or now once it holds a full batch) and known in the targets set, its
-- lane marked due in the ready index of lanes; then the backlog. One script call instead of ~4 commands per
-- target: the client's per-command packing and reply parsing cost more than Redis's own work here.
-- KEYS: ready index (lanes), targets set, backlog, intake-recent marker, quiet-swept marker, then per target:
-- its stream, its pending counter, its lane's due set.
-- ARGV: due time, entry field name, batch size, quiet-flush period (ms, 0 = off), backlog ceiling (0 = none),
-- then per target: its name, its operation count, its entry, its lane.
-- Returns the backlog after the append; or, when the append would take the backlog past the ceiling, writes
-- nothing and returns -1 - backlog (the check and the write are one atomic step: whatever the request size
-- or the number of concurrent writers, the backlog never passes the ceiling).
local due, field, batch_size, quiet_ms = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local ceiling = tonumber(ARGV[5])
local targets = (#KEYS - 5) / 3
local total = 0
for i = 1, targets do
  total = total + tonumber(ARGV[4 * i + 3])
end
if ceiling > 0 then
  local backlog = tonumber(redis.call('GET', KEYS[3]) or '0')
  if backlog + total > ceiling then
    return -1 - backlog
  end
end
--#include slices
-- Every target's pending count is read with one MGET and written with one MSET (in slices) rather than an INCRBY
-- each: inside this atomic script that is the same increment, and a
-- command called from Lua costs more than its own work when a request spreads over thousands of audiences.
-- The targets of one call are distinct, so no counter is counted twice.
local counters = {}
for i = 1, targets do counters[i] = KEYS[4 + 3 * i] end
local before = mget(counters)
local counts_out = {}  -- counter, new count, counter, new count, ...
local new_targets = {}
local lanes = {}  -- lane -> the earliest due time of its targets in this call: one ZADD per lane, not per target
local due_sets = {}  -- lane -> {its due set's key, {score, target, score, target, ...}}: one ZADD per lane too
for i = 1, targets do
  local name, ops, entry, lane = ARGV[4 * i + 2], tonumber(ARGV[4 * i + 3]), ARGV[4 * i + 4], ARGV[4 * i + 5]
  redis.call('XADD', KEYS[3 + 3 * i], '*', field, entry)
  local pending = tonumber(before[i] or '0') + ops
  counts_out[#counts_out + 1] = counters[i]
  counts_out[#counts_out + 1] = pending
  -- LT keeps an earlier due time: the oldest waiting operation sets the pace; a full batch is due at once.
  local at = pending >= batch_size and 0 or due
  local set = due_sets[lane]
  if set == nil then
    set = {KEYS[5 + 3 * i], {}}
    due_sets[lane] = set
  end
  local members = set[2]
  members[#members + 1] = at
  members[#members + 1] = name
  if lanes[lane] == nil or tonumber(at) < tonumber(lanes[lane]) then lanes[lane] = at end
  -- The set of known targets never loses one: only a target whose count starts from nothing (new, or drained
  -- since its last write) may be missing from it.
  if pending == ops then new_targets[#new_targets + 1] = name end
end
call_sliced('MSET', counts_out)
call_sliced('SADD', new_targets, KEYS[2])
for _, set in pairs(due_sets) do
  call_sliced('ZADD', set[2], set[1], 'LT')
end
for lane, at in pairs(lanes) do
  redis.call('ZADD', KEYS[1], 'LT', at, lane)
end
if quiet_ms > 0 then
  -- The intake is busy for another quiet period; the scheduler may sweep again once it has gone quiet.
  redis.call('SET', KEYS[4], 1, 'PX', quiet_ms)
  redis.call('DEL', KEYS[5])
end
return redis.call('INCRBY', KEYS[3], total)
