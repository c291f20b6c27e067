-- A success ends the streak, unless it was granted before the streak's last refusal.
-- KEYS: bucket
-- ARGV: granted
if (tonumber(redis.call('HGET', KEYS[1], 'streak_at')) or -1) < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'streak', 0)
end
return 0
