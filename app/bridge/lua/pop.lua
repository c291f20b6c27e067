-- Remove the processed head, only if we still hold the lease and it is still the head; hand
-- back the next head (one round trip per message), or give the lane up when it is empty and
-- hand back up to `candidates` lanes due now instead (the worker's next claim looks there).
-- {-1}: the lease is someone else's; {-2}: the head changed; {0, due lanes...}: empty, released;
-- {1, next head}: work left (its head read once: it says whether any is left, no LLEN).
-- KEYS: lease lane due
-- ARGV: token raw lane_id now lease_ms candidates
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1} end
local head = redis.call('LPOP', KEYS[2])
if head ~= ARGV[2] then
  if head then redis.call('LPUSH', KEYS[2], head) end
  return {-2}
end
local following = redis.call('LINDEX', KEYS[2], 0)
if not following then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[3], ARGV[3])
  local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[4], 'LIMIT', 0, ARGV[6])
  table.insert(due, 1, 0)
  return due
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[3], tonumber(ARGV[4]) + tonumber(ARGV[5]), ARGV[3])
return {1, following}
