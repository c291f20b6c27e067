-- Record an item's latest outcome in a connection's journal and count a relayed message for
-- the day: one round trip per outcome for the worker. What is too old or beyond the cap is
-- dropped, and the TTLs renewed, when `tidy` says so or the day's count says it is time (the
-- day's first, and every `every`-th, message each way): 3 commands a message instead of 7,
-- for at most `every` entries a direction beyond `keep` between two tidyings.
-- KEYS: order items counter
-- ARGV: id entry at cutoff keep count counter_ttl ttl tidy every
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local tidy = ARGV[9] == '1'
if ARGV[6] == '1' then
  local n = redis.call('INCR', KEYS[3])
  if n == 1 then
    redis.call('EXPIRE', KEYS[3], ARGV[7])  -- the day's first: its counter outlives the day
  end
  tidy = tidy or (n - 1) % tonumber(ARGV[10]) == 0
end
if not tidy then return 0 end
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
-- An idle connection's journal goes away by itself once every entry would be too old: it is
-- renewed at least on each day's first message, so `ttl` is the age limit plus a day.
redis.call('EXPIRE', KEYS[1], ARGV[8])
redis.call('EXPIRE', KEYS[2], ARGV[8])
return 1
