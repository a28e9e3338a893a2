-- Read the heads of many streams at once: per stream key, up to ARGV[1] entries from the id given for it (its
-- start, "-", or just past what an earlier read took, "(<id>"). One script call instead of one XRANGE command
-- per audience of a lane (thousands of them in a round).
-- KEYS: stream keys. ARGV[1]: most entries per stream; ARGV[2]: where to start reading each key, in order,
-- separated by spaces (one argument, not one per stream: the client's per-argument cost is what counts here).
-- Returns, per key, its entries as {id, {field, value, ...}}.
local starts = {}
for start in string.gmatch(ARGV[2], '%S+') do starts[#starts + 1] = start end
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('XRANGE', KEYS[i], starts[i], '+', 'COUNT', ARGV[1])
end
return out
