-- Move records of a conversation's `replies` hash on (receipt_add.lua writes them), never back
-- (sent < received < seen): `slot` "state" sets the state Zalo reported, with its time `at`;
-- `slot` "reported" the state agents were told. `ids` is the space-separated message ids; an
-- id without a record (not sent by the bridge, or dropped as older than the kept ones) is left
-- alone. Read and write in one step, so a receipt and a receipts note never undo each other.
-- Returns how many records moved.
-- KEYS: replies
-- ARGV: slot state at ids
local rank = {sent = 0, received = 1, seen = 2}
local moved = 0
for id in string.gmatch(ARGV[4], '%S+') do
  local record = redis.call('HGET', KEYS[1], id)
  local sent, state, at, reported, quota
  if record then
    sent, state, at, reported, quota = string.match(record, '^(%d*)|(%a*)|(%d*)|(%a*)|(.*)$')
  end
  if sent then
    local new = rank[ARGV[2]] or 0
    if ARGV[1] == 'state' and new > (rank[state] or 0) then
      state, at = ARGV[2], ARGV[3]
      moved = moved + 1
      redis.call('HSET', KEYS[1], id, table.concat({sent, state, at, reported, quota}, '|'))
    elseif ARGV[1] == 'reported' and new > (rank[reported] or 0) then
      reported = ARGV[2]
      moved = moved + 1
      redis.call('HSET', KEYS[1], id, table.concat({sent, state, at, reported, quota}, '|'))
    end
  end
end
return moved
