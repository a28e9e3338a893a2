-- Read the heads of many streams at once: per stream key, up to ARGV[1] entries from the id given for it (its
-- start, "-", or just past what an earlier read took, "(<id>"). One script call instead of one XRANGE command
-- per audience of a lane (thousands of them in a round).
-- KEYS: stream keys. ARGV[1]: most entries per stream; ARGV[2]: where to start reading each key, in order,
-- separated by spaces (one argument, not one per stream: the client's per-argument cost is what counts here).
-- Returns three flat lists: per key, how many entries it read; every entry's id; and every entry's value (of
-- its one field, worker.queue), keys in order. Flat rather than an {id, {field, value}} list per entry: a round
-- over thousands of audiences reads a few small entries of each, and the client then builds no nested lists
-- and parses every value of the answer with one call.
local starts = {}
for start in string.gmatch(ARGV[2], '%S+') do starts[#starts + 1] = start end
local counts, ids, values = {}, {}, {}
local n = 0
for i = 1, #KEYS do
  local entries = redis.call('XRANGE', KEYS[i], starts[i], '+', 'COUNT', ARGV[1])
  counts[i] = #entries
  for j = 1, #entries do
    local entry = entries[j]
    ids[n + j] = entry[1]
    values[n + j] = entry[2][2]
  end
  n = n + #entries
end
return {counts, ids, values}
