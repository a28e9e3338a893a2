-- Read the heads of many streams at once: per stream key, up to ARGV[1] entries from the id given for it (its
-- start, "-", or just past what an earlier read took, "(<id>"). One script call instead of one XRANGE command
-- per audience of a lane (thousands of them in a round).
-- KEYS: stream keys. ARGV[1]: most entries per stream; ARGV[1 + i]: where to start reading KEYS[i].
-- Returns, per key, its entries as {id, {field, value, ...}}.
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('XRANGE', KEYS[i], ARGV[1 + i], '+', 'COUNT', ARGV[1])
end
return out
