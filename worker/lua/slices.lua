-- Included (`--#include slices`) by the scripts that touch thousands of keys or members in one call. Lua's
-- unpack takes at most ~8,000 values, so one command of more arguments goes in slices of SLICE values; SLICE is
-- even, so field/value and score/member pairs are never split between two slices.
local SLICE = 4000
-- redis.call(command, [key, [option,]] values...) for as many values as there are, a slice at a time.
local function call_sliced(command, values, key, option)
  for first = 1, #values, SLICE do
    local last = math.min(first + SLICE - 1, #values)
    if option then
      redis.call(command, key, option, unpack(values, first, last))
    elseif key then
      redis.call(command, key, unpack(values, first, last))
    else
      redis.call(command, unpack(values, first, last))
    end
  end
end
-- The values of many keys, in their order: one MGET per slice rather than a GET each.
local function mget(names)
  local values = {}
  for first = 1, #names, SLICE do
    local part = redis.call('MGET', unpack(names, first, math.min(first + SLICE - 1, #names)))
    for i = 1, #part do values[first + i - 1] = part[i] end
  end
  return values
end
