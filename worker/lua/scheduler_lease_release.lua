-- Give the scheduler's lease up, only if this holder still has it. KEYS[1] the lease; ARGV[1] the holder's id.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
