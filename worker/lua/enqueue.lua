-- Append operations: per target one stream entry and a pending-count increment, the target marked due in its
-- lane's due set (one flush interval out, or now once it holds a full batch) and known in the targets set, its
-- lane marked due in the ready index of lanes; then the backlog. One script call instead of ~4 commands per
-- target: the client's per-command packing and reply parsing cost more than Redis's own work here.
-- KEYS: ready index (lanes), targets set, backlog, intake-recent marker, quiet-swept marker, then per lane its
-- due set, then per target (lane by lane, in the lanes' order): its stream, its pending counter.
-- ARGV: due time, entry field name, batch size, quiet-flush period (ms, 0 = off), backlog ceiling (0 = none),
-- the operations in all, the number of lanes; then per lane: its name and how many of the targets are its;
-- then per target: its name, its operation count, its entry.
-- A request names one lane nearly always and one target per event at worst (a request spread over thousands of
-- audiences): what is the same for every target of a lane is passed once, not once per target.
-- Returns the backlog after the append; or, when the append would take the backlog past the ceiling, writes
-- nothing and returns -1 - backlog (the check and the write are one atomic step: whatever the request size
-- or the number of concurrent writers, the backlog never passes the ceiling).
local due, field, batch_size, quiet_ms = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local ceiling, total, lanes = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if ceiling > 0 then
  local backlog = tonumber(redis.call('GET', KEYS[3]) or '0')
  if backlog + total > ceiling then
    return -1 - backlog
  end
end
--#include slices
local before_targets = 5 + lanes  -- KEYS before the first target's
local targets = (#KEYS - before_targets) / 2
-- Every target's pending count is read with one MGET and written with one MSET (in slices) rather than an INCRBY
-- each: inside this atomic script that is the same increment, and a
-- command called from Lua costs more than its own work when a request spreads over thousands of audiences.
-- The targets of one call are distinct, so no counter is counted twice.
local counters = {}
for i = 1, targets do counters[i] = KEYS[before_targets + 2 * i] end
local before = mget(counters)
local counts_out = {}  -- counter, new count, counter, new count, ...
local new_targets = {}
local i, a = 0, 8 + 2 * lanes  -- the target so far, and the ARGV index of the next target's name
for l = 1, lanes do
  local lane, in_lane = ARGV[6 + 2 * l], tonumber(ARGV[7 + 2 * l])
  local members = {}  -- score, target, score, target, ...: one ZADD for the lane's targets
  local earliest = due  -- the lane's earliest due time in this call: one ZADD of the lane, not one per target
  for m = 1, 2 * in_lane, 2 do
    i = i + 1
    local name, ops = ARGV[a], tonumber(ARGV[a + 1])
    redis.call('XADD', KEYS[before_targets + 2 * i - 1], '*', field, ARGV[a + 2])
    a = a + 3
    local pending = tonumber(before[i] or '0') + ops
    counts_out[2 * i - 1] = counters[i]
    counts_out[2 * i] = pending
    -- LT keeps an earlier due time: the oldest waiting operation sets the pace; a full batch is due at once.
    if pending >= batch_size then
      members[m] = 0
      earliest = 0
    else
      members[m] = due
    end
    members[m + 1] = name
    -- The set of known targets never loses one: only a target whose count starts from nothing (new, or drained
    -- since its last write) may be missing from it.
    if pending == ops then new_targets[#new_targets + 1] = name end
  end
  call_sliced('ZADD', members, KEYS[5 + l], 'LT')
  redis.call('ZADD', KEYS[1], 'LT', earliest, lane)
end
call_sliced('MSET', counts_out)
call_sliced('SADD', new_targets, KEYS[2])
if quiet_ms > 0 then
  -- The intake is busy for another quiet period; the scheduler may sweep again once it has gone quiet.
  redis.call('SET', KEYS[4], 1, 'PX', quiet_ms)
  redis.call('DEL', KEYS[5])
end
return redis.call('INCRBY', KEYS[3], total)
