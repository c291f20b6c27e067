-- Take a token: {ms to wait (0: go now), length of the current rate-limit streak}.
-- KEYS: bucket pause
-- ARGV: cap rate now recover_ms
-- INCLUDE: rate_level
local streak = tonumber(b[5]) or 0
if pause > now then return {pause - now, streak} end
local tokens, factor = level(b, cap, rate, now, r)
if tokens >= 1 then
  redis.call('HSET', KEYS[1], 'tokens', tokens - 1, 'ts', now)
  redis.call('PEXPIRE', KEYS[1], 3600000)
  return {0, streak}
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
return {math.ceil((1 - tokens) / (rate * factor)), streak}
