-- Record an item's latest outcome in a connection's journal, drop what is too old or beyond the
-- cap, and count a relayed message for the day: one round trip per outcome for the worker.
-- KEYS: order items counter
-- ARGV: id entry at cutoff keep count counter_ttl max_age
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local function drop(ids)
  for _, id in ipairs(ids) do
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
  end
end
drop(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4]))
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[5])
if extra > 0 then
  drop(redis.call('ZRANGE', KEYS[1], 0, extra - 1))
end
-- An idle connection's journal goes away by itself once every entry would be too old.
redis.call('EXPIRE', KEYS[1], ARGV[8])
redis.call('EXPIRE', KEYS[2], ARGV[8])
if ARGV[6] == '1' and redis.call('INCR', KEYS[3]) == 1 then
  redis.call('EXPIRE', KEYS[3], ARGV[7])  -- the day's first: its counter outlives the day
end
return 1
