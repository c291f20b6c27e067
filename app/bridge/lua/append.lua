-- Append an item without a dedupe key (a replayed dead letter) and schedule its lane.
-- KEYS: lane due wake
-- ARGV: item lane_id now
redis.call('RPUSH', KEYS[1], ARGV[1])
if redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[2]) == 1 then
  redis.call('RPUSH', KEYS[3], ARGV[2])
end
return 1
