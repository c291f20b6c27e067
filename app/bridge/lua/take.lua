-- Lease a lane that is due and unleased. While leased its due time is the lease's end, so a
-- lane whose worker died becomes due again exactly when its lease runs out. When taken:
-- {1, head, PTTL of the lane's connection's open breaker marks (zalo, freshchat)} - the head
-- in the same round trip (a claimed lane is worked on at once), and whether the partner it
-- delivers to is down for everyone (app/bridge/breaker.py), so the drain asks no one else
-- before its first item. Else 0.
-- KEYS: lease due lane zalo_open freshchat_open
-- ARGV: lane_id now token lease_ms
local due = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[2]) then return 0 end
if not redis.call('SET', KEYS[1], ARGV[3], 'NX', 'PX', ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[2], tonumber(ARGV[2]) + tonumber(ARGV[4]), ARGV[1])
return {1, redis.call('LINDEX', KEYS[3], 0), redis.call('PTTL', KEYS[4]), redis.call('PTTL', KEYS[5])}
