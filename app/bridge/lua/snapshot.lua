-- Every key whose name matches `pattern`, read in one atomic step, so a backup never holds a
-- lane without the items a webhook appended to it in the same step (accept.lua), or the reverse.
-- Answers a flat list: name, milliseconds to live (-1: none), DUMP payload, name, ...; a lane
-- (its name starts with `lanes`) answers its items instead of a DUMP payload: queued work is
-- kept as data, which restore queues again through the bridge's own path.
-- ARGV: pattern lanes
local found = {}
local cursor = '0'
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = page[1]
  for _, name in ipairs(page[2]) do
    found[#found + 1] = name
    found[#found + 1] = redis.call('PTTL', name)
    if string.sub(name, 1, #ARGV[2]) == ARGV[2] then
      found[#found + 1] = redis.call('LRANGE', name, 0, -1)
    else
      found[#found + 1] = redis.call('DUMP', name)
    end
  end
until cursor == '0'
return found
