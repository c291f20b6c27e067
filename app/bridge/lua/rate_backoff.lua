-- A call granted at `granted` was refused for the quota: pause everyone for first_ms, doubling
-- with each refusal in a row up to max_ms, and halve the refill rate down to `floor`.
-- Returns the shared pause in ms. A refusal of a call granted before the last counted one was
-- already in flight when we backed off: it tells nothing new, so it neither doubles the pause
-- nor cuts the rate again.
-- KEYS: bucket
-- ARGV: cap rate now recover_ms granted first_ms max_ms floor
-- INCLUDE: rate_level
local granted = tonumber(ARGV[5])
if (tonumber(b[6]) or -1) >= granted then return math.max(pause - now, 0) end
local tokens, factor = level(b, cap, rate, now, r)
local streak = (tonumber(b[5]) or 0) + 1
local wait = math.floor(math.min(tonumber(ARGV[6]) * 2 ^ (streak - 1), tonumber(ARGV[7])))
local fields = {'tokens', tokens, 'ts', now, 'factor', math.max(tonumber(ARGV[8]), factor / 2),
                'slow_at', now, 'streak', streak, 'streak_at', now, 'renewed', now}
if wait > 0 and now + wait > pause then
  table.insert(fields, 'pause'); table.insert(fields, now + wait)
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIRE', KEYS[1], TTL_MS + wait)  -- outlives its pause
return math.max(wait, pause - now)
