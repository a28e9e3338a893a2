-- Record what a delivered request did to each user, and keep the audience's net size.
-- KEYS: membership hash, size counter. ARGV[1]: 'a' or 'd'; ARGV[2]: position tag (sortable string);
-- ARGV[3..]: row keys. A stored value is tag .. action; a newer tag is never overwritten by an older one.
-- One HMGET and a few HSETs of many fields, not two calls per row: redis.call per row was most of the cost.
local action, tag = ARGV[1], ARGV[2]
local taglen = string.len(tag)
local value = tag .. action
local olds = redis.call('HMGET', KEYS[1], unpack(ARGV, 3))
local written = {}  -- row key -> true once set by this call (a repeated key sees its own earlier write)
local pairs_out = {}
local delta = 0
for i = 3, #ARGV do
  local key = ARGV[i]
  local old = olds[i - 2]
  if written[key] then old = value end
  local apply = true
  local was_member = false
  if old then
    if string.sub(old, 1, taglen) > tag then apply = false end
    was_member = string.sub(old, -1) == 'a'
  end
  if apply then
    written[key] = true
    pairs_out[#pairs_out + 1] = key
    pairs_out[#pairs_out + 1] = value
    if action == 'a' and not was_member then delta = delta + 1 end
    if action == 'd' and was_member then delta = delta - 1 end
  end
end
-- Lua's unpack takes at most ~8,000 values: write in slices.
local slice = 4000
for first = 1, #pairs_out, slice do
  redis.call('HSET', KEYS[1], unpack(pairs_out, first, math.min(first + slice - 1, #pairs_out)))
end
return redis.call('INCRBY', KEYS[2], delta)
