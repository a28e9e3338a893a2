-- Index a new batch record under every key that lists it (all batches, each of its targets, each of its
-- audiences): one script call instead of one ZADD command per key, which for a batch of thousands of audiences
-- costs the worker far more in command packing and reply parsing than Redis's own work.
-- KEYS: the index sorted sets. ARGV[1]: score (the record's creation time); ARGV[2]: batch id.
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], ARGV[1], ARGV[2])
end
return #KEYS
