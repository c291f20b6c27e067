-- Extend our lease (and the lane's due time with it) while we make progress. 0: not ours.
-- KEYS: lease due
-- ARGV: token lease_ms lane_id now
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], 'XX', tonumber(ARGV[4]) + tonumber(ARGV[2]), ARGV[3])
return 1
