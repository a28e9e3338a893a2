-- Record what a delivered request did to each user, and keep the audience's net size.
-- KEYS: membership hash, size counter. ARGV[1]: 'a' or 'd'; ARGV[2]: position tag (sortable string);
-- ARGV[3..]: row keys. A stored value is tag .. action; a newer tag is never overwritten by an older one.
local action, tag = ARGV[1], ARGV[2]
local taglen = string.len(tag)
local delta = 0
for i = 3, #ARGV do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  local apply = true
  local was_member = false
  if old then
    if string.sub(old, 1, taglen) > tag then apply = false end
    was_member = string.sub(old, -1) == 'a'
  end
  if apply then
    redis.call('HSET', KEYS[1], ARGV[i], tag .. action)
    if action == 'a' and not was_member then delta = delta + 1 end
    if action == 'd' and was_member then delta = delta - 1 end
  end
end
return redis.call('INCRBY', KEYS[2], delta)
