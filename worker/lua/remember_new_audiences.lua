-- Record audiences for `audiences list` unless already recorded: HSETNX of many fields in one call.
-- KEYS[1] the audiences hash; ARGV: field, value, field, value...
for i = 1, #ARGV, 2 do redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) end
return #ARGV / 2
