-- Accept a webhook event: dedupe, append to its lane and schedule the lane, in one step,
-- so a 200 means "in the lane exactly once". 0 when the event was seen before.
-- A webhook (not a catch-up) also sets its connection's last-webhook time (`received_at`, epoch
-- seconds; "" for none), duplicate or not: the status and the quiet check read it.
-- KEYS: seen lane due wake received
-- ARGV: ttl item lane_id now received_at
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[5], ARGV[5])
end
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) == false then
  return 0
end
redis.call('RPUSH', KEYS[2], ARGV[2])
-- NX: a lane already scheduled (drained, deferred or waiting) keeps its time and its order.
if redis.call('ZADD', KEYS[3], 'NX', ARGV[4], ARGV[3]) == 1 then
  redis.call('RPUSH', KEYS[4], ARGV[3])
end
return 1
