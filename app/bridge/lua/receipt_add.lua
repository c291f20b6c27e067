-- Record a message sent into a conversation (app/bridge/mapping.py, Mapping.remember_receipt):
-- one field of the conversation's `replies` hash, `record` = "<sent ms>|sent||<reported>|<quota>".
-- The hash keeps the `kept` latest sends (the oldest by sent ms go first), so a conversation
-- holds at most `kept` records however many replies it gets; it expires `ttl` seconds after
-- the last one. Returns how many old records were dropped.
-- KEYS: replies
-- ARGV: msg_id record kept ttl
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
local over = redis.call('HLEN', KEYS[1]) - tonumber(ARGV[3])
if over <= 0 then return 0 end
local all = redis.call('HGETALL', KEYS[1])
local order = {}
for i = 1, #all, 2 do
  order[#order + 1] = {tonumber(string.match(all[i + 1], '^(%d+)')) or 0, all[i]}
end
table.sort(order, function(a, b) return a[1] < b[1] end)
for i = 1, over do redis.call('HDEL', KEYS[1], order[i][2]) end
return over
