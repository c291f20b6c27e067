-- Take a token: {ms to wait (0: go now), length of the current rate-limit streak}.
-- KEYS: bucket
-- ARGV: cap rate now recover_ms
-- INCLUDE: rate_level
local streak = tonumber(b[5]) or 0
if pause > now then return {pause - now, streak} end
local tokens, factor = level(b, cap, rate, now, r)
if tokens >= 1 then
  local fields, expire = renew({'tokens', tokens - 1, 'ts', now})
  redis.call('HSET', KEYS[1], unpack(fields))
  if expire then redis.call('PEXPIRE', KEYS[1], TTL_MS) end
  return {0, streak}
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
return {math.ceil((1 - tokens) / (rate * factor)), streak}
