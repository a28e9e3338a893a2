-- Per destination and wall-clock minute, the audiences admitted as new (a set, so an audience two intake
-- processes both introduce counts once). For each candidate: known when its known-key holds it (the target set
-- for targets, the legacy-created marker for legacy creates) or this minute's set does; else admitted while the
-- set is under the cap. Returns the names refused.
-- KEYS: per candidate its known-key and this minute's set; ARGV: cap, ttl, then the candidates' names.
local cap = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local refused = {}
local n = (#KEYS) / 2
for i = 1, n do
  local known_key, minute_key, name = KEYS[2 * i - 1], KEYS[2 * i], ARGV[2 + i]
  local known
  if string.sub(name, 1, 7) == 'create:' then
    known = redis.call('EXISTS', known_key) == 1
  else
    known = redis.call('SISMEMBER', known_key, name) == 1
  end
  if not known and redis.call('SISMEMBER', minute_key, name) == 0 then
    if redis.call('SCARD', minute_key) < cap then
      redis.call('SADD', minute_key, name)
      redis.call('EXPIRE', minute_key, ttl)
    else
      refused[#refused + 1] = name
    end
  end
end
return refused

