-- Read the heads of many streams at once: per stream key, up to ARGV[1] entries from the id given for it (its
-- start, "-", or just past what an earlier read took, "(<id>"). One script call instead of one XRANGE command
-- per audience of a lane (thousands of them in a round).
-- KEYS: stream keys. ARGV[1]: most entries per stream; ARGV[2]: where to start reading each key, in order,
-- separated by spaces (one argument, not one per stream: the client's per-argument cost is what counts here).
-- Returns one JSON text: per key, the list of its entries, each [id, value of its one field] (the value is the
-- entry's JSON, worker.queue), so the client parses the whole answer with one call instead of building
-- nested lists of every entry and then parsing each entry's value apart.
local starts = {}
for start in string.gmatch(ARGV[2], '%S+') do starts[#starts + 1] = start end
-- The answer's pieces, joined once at the end: each value is copied only into the answer, never into a
-- string of its own entry first.
local parts, n = {'['}, 1
for i = 1, #KEYS do
  local entries = redis.call('XRANGE', KEYS[i], starts[i], '+', 'COUNT', ARGV[1])
  parts[n + 1] = i == 1 and '[' or ',['
  n = n + 1
  for j = 1, #entries do
    local entry = entries[j]
    parts[n + 1] = j == 1 and '["' or ',["'
    parts[n + 2] = entry[1]
    parts[n + 3] = '",'
    parts[n + 4] = entry[2][2]
    parts[n + 5] = ']'
    n = n + 5
  end
  parts[n + 1] = ']'
  n = n + 1
end
parts[n + 1] = ']'
return table.concat(parts)
