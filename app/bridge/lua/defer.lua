-- Try the head again later: rewrite it (its retry bookkeeping), give the lease up and make
-- the lane due at due_ms. Later items wait behind it. -1: not our lease; 1: deferred.
-- KEYS: lease lane due
-- ARGV: token raw updated due_ms lane_id
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('LINDEX', KEYS[2], 0) == ARGV[2] then
  redis.call('LSET', KEYS[2], 0, ARGV[3])
end
redis.call('DEL', KEYS[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
return 1
