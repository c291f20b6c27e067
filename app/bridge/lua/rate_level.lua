-- The token bucket's level now, spliced into rate_take.lua and rate_backoff.lua.
-- The bucket refills at `rate` tokens a ms up to `cap`. A rate-limit answer cuts the refill
-- rate to `factor` (slow_at = when); it climbs back linearly over `recover_ms`, so tokens
-- are the integral of rate * factor since the last grant.
-- The shared pause (everyone waits until then, after a 429 or a quota refusal) is the bucket's
-- `pause` field, read with the rest: one command. The bucket's TTL (an hour) is renewed when
-- `renewed` is half an hour old (`renew(fields)`), not on every grant.
-- Leaves for the script: cap, rate, now, r, b (the bucket's fields), pause, level(), area(),
-- renew().
-- KEYS: bucket
-- ARGV: cap rate now recover_ms
local function area(t, f0, s, r)
  local d = t - s
  if d <= 0 then return f0 * d end
  if d >= r then return f0 * r + (1 - f0) * r / 2 + (d - r) end
  return f0 * d + (1 - f0) * d * d / (2 * r)
end
local function level(b, cap, rate, now, r)
  local tokens = tonumber(b[1]) or cap; local ts = tonumber(b[2]) or now
  local f0 = tonumber(b[3]); local s = tonumber(b[4])
  if not f0 then return math.min(cap, tokens + (now - ts) * rate), 1 end
  local factor = f0 + (1 - f0) * math.max(0, math.min(1, (now - s) / r))
  return math.min(cap, tokens + (area(now, f0, s, r) - area(ts, f0, s, r)) * rate), factor
end
local cap = tonumber(ARGV[1]); local rate = tonumber(ARGV[2]); local now = tonumber(ARGV[3])
local r = tonumber(ARGV[4])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'factor', 'slow_at', 'streak', 'streak_at', 'pause', 'renewed')
local pause = tonumber(b[7]) or 0
local TTL_MS = 3600000
-- `fields` (a list for HSET) with the renewal's mark when the TTL is due for it (so at least
-- half an hour of it is left after any grant), and whether to PEXPIRE.
local function renew(fields)
  if (tonumber(b[8]) or -TTL_MS) > now - TTL_MS / 2 then return fields, false end
  table.insert(fields, 'renewed'); table.insert(fields, now)
  return fields, true
end
