-- One script, three verbs, so that only the holder of the lock's token can extend or release it.
-- KEYS[1] lock key; ARGV[1] verb (acquire|extend|release); ARGV[2] token; ARGV[3] ttl in ms
local verb = ARGV[1]
if verb == 'acquire' then
  if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[3]) then return 1 end
  return 0
end
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
if verb == 'extend' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
redis.call('DEL', KEYS[1])
return 1
