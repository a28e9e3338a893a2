-- Read the head of many streams at once: per stream key, up to ARGV[1] entries from its start. One script call
-- instead of one XRANGE command per audience of a lane (thousands of them in a round).
-- KEYS: stream keys. Returns, per key, its entries as {id, {field, value, ...}}.
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('XRANGE', KEYS[i], '-', '+', 'COUNT', ARGV[1])
end
return out
