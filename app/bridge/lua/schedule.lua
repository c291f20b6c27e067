-- Put a timer lane's one waiting item in place for due_ms (a window note, a receipts note).
-- `replace` 1: this item and its time take the place of a waiting one (a later message moves
-- the window); 0: a waiting one is kept with its time (debounce: the first change sets it).
-- While a worker holds the lane its head is in work, so the item goes behind it; the worker
-- defers it to its own time if it reaches it early. 1: queued; 2: replaced; 0: kept.
-- An empty lane is not asked about its lease (a worker's head is in its lane while it works):
-- the first timer after an answer costs 3 commands, not 4. Were a lease held on an empty lane
-- (a stale due entry taken), the worker's release makes the lane due now and the timer's
-- handler defers it to its time.
-- KEYS: lane due lease
-- ARGV: item lane_id due_ms replace
local length = redis.call('LLEN', KEYS[1])
local leased = length > 0 and redis.call('EXISTS', KEYS[3]) == 1
local waiting = length - (leased and 1 or 0)
if waiting <= 0 then
  redis.call('RPUSH', KEYS[1], ARGV[1])
  if not leased then redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2]) end
  return 1
end
if ARGV[4] ~= '1' then return 0 end
redis.call('LSET', KEYS[1], -1, ARGV[1])
if not leased then redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2]) end
return 2
