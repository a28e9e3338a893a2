-- Fleet-wide rate limit for one access token: GCRA with no burst, plus the throttle cooldown.
--
-- KEYS[1]  the token's theoretical arrival time (TAT), integer microseconds of server time
-- KEYS[2]  the token's cooldown key; while it exists (PX expiry) no call may be made
-- KEYS[3]  the token's count of granted slots (an integer that only grows: operators read calls per second)
-- ARGV[1]  emission interval: microseconds between two calls (ceil(1e6 * (1 + safety margin) / qps))
-- ARGV[2]  how far ahead a slot may be reserved, microseconds (0: only a slot free now is granted)
--
-- Returns {wait_us, now_us, granted}. granted = 1: the slot wait_us from now is recorded as the caller's, who
-- calls once it has waited that long (0 means at once). granted = 0: nothing is recorded, and wait_us is how
-- long to wait before asking again, the longer of the GCRA wait and the cooldown. now_us is the server time
-- the decision was taken at. A cooldown is never reserved through.
--
-- Time comes from the Redis server only, so workers on hosts with skewed clocks still share one timeline.
-- Times are whole microseconds: Lua numbers are doubles, exact for integers up to 2^53 (the year 2255 in us),
-- and integer spacing keeps "at most qps calls in any second" free of rounding error.

if redis.replicate_commands then
  -- Redis < 5 must be told before a write follows TIME; newer servers always replicate effects.
  redis.replicate_commands()
end

local interval = tonumber(ARGV[1])
local ahead = tonumber(ARGV[2] or '0')
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

local cooldown_wait = 0
local cooldown_ms = redis.call('PTTL', KEYS[2])
if cooldown_ms > 0 then
  cooldown_wait = cooldown_ms * 1000
end

-- A missing or past TAT means the token has been idle: it may call now.
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
-- Burst of one: the tolerance is zero, so a call is allowed only once the TAT is reached.
local gcra_wait = tat - now

if cooldown_wait > 0 or gcra_wait > ahead then
  return {math.max(gcra_wait, cooldown_wait), now, 0}
end

local next_tat = tat + interval
-- The key is only meaningful until next_tat; after that a missing key means the same thing.
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1)
redis.call('INCR', KEYS[3])
return {gcra_wait, now, 1}
