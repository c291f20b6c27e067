-- Put a timer lane's one waiting item in place for due_ms (a window note, a receipts note).
-- `replace` 1: this item and its time take the place of a waiting one (a later message moves
-- the window); 0: a waiting one is kept with its time (debounce: the first change sets it).
-- While a worker holds the lane its head is in work, so the item goes behind it; the worker
-- defers it to its own time if it reaches it early. 1: queued; 2: replaced; 0: kept.
-- KEYS: lane due lease
-- ARGV: item lane_id due_ms replace
local leased = redis.call('EXISTS', KEYS[3]) == 1
local waiting = redis.call('LLEN', KEYS[1]) - (leased and 1 or 0)
if waiting <= 0 then
  redis.call('RPUSH', KEYS[1], ARGV[1])
  if not leased then redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2]) end
  return 1
end
if ARGV[4] ~= '1' then return 0 end
redis.call('LSET', KEYS[1], -1, ARGV[1])
if not leased then redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2]) end
return 2
