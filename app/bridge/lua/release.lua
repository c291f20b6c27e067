-- Give the lease up: an empty lane is forgotten, one with work is due now.
-- -1: not our lease; 0: empty; 1: work left.
-- KEYS: lease lane due
-- ARGV: token lane_id now
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('DEL', KEYS[1])
if redis.call('LLEN', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[3], ARGV[2])
  return 0
end
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
return 1
