-- The delivered-membership record of one audience: per user, the last applied action and its event's order.
-- KEYS[1]: membership hash; KEYS[2]: size counter. ARGV[1]: 'check' or 'record'; ARGV[2..]: pairs of
-- (user field, value), value = order key (21 chars: 13-digit event ms, 8-hex message id tie-break) .. 'a'/'d'.
-- Values written before event times existed hold a stream position tag (15-digit ms, 8-digit sequence) ..
-- action, 24 chars: they read as that ms with the lowest tie-break (their event time was their acceptance).
-- An operation applies when its order key is greater than the recorded one; an equal key is the same event
-- again (a no-op), unless its action differs (operations without event time or message id): then the later
-- arrival wins, as before event times existed.
-- check: returns a string with '1' per pair that would apply, '0' per pair superseded (read only).
-- record: writes the pairs that apply and returns the audience's net size afterwards; only a change of state
-- (absent or removed -> added, added -> removed) moves the size, so recording a batch twice changes nothing.
-- One HMGET and a few HSETs of many fields, not two calls per row: redis.call per row was most of the cost.
local KEYLEN = 21
local mode = ARGV[1]
local count = (#ARGV - 1) / 2
local fields = {}
for i = 1, count do fields[i] = ARGV[2 * i] end
local olds = redis.call('HMGET', KEYS[1], unpack(fields))

local function order_of(value)
  if #value == 24 then return string.sub(value, 3, 15) .. '00000000' end
  return string.sub(value, 1, KEYLEN)
end

local function applies(new, old)
  if not old then return true end
  local mine, theirs = string.sub(new, 1, KEYLEN), order_of(old)
  if mine ~= theirs then return mine > theirs end
  return string.sub(new, -1) ~= string.sub(old, -1)
end

if mode == 'check' then
  local out = {}
  for i = 1, count do out[i] = applies(ARGV[2 * i + 1], olds[i]) and '1' or '0' end
  return table.concat(out)
end

local written = {}  -- field -> value set by this call (a repeated field sees its own earlier write)
local pairs_out = {}
local delta = 0
for i = 1, count do
  local field, value = fields[i], ARGV[2 * i + 1]
  local old = written[field] or olds[i]
  if applies(value, old) then
    written[field] = value
    pairs_out[#pairs_out + 1] = field
    pairs_out[#pairs_out + 1] = value
    local was_member = old and string.sub(old, -1) == 'a'
    local is_member = string.sub(value, -1) == 'a'
    if is_member and not was_member then delta = delta + 1 end
    if was_member and not is_member then delta = delta - 1 end
  end
end
-- Lua's unpack takes at most ~8,000 values: write in slices.
local slice = 4000
for first = 1, #pairs_out, slice do
  redis.call('HSET', KEYS[1], unpack(pairs_out, first, math.min(first + slice - 1, #pairs_out)))
end
return redis.call('INCRBY', KEYS[2], delta)
