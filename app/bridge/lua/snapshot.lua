-- Every key whose name matches `pattern`, read in one atomic step, so a backup never holds a
-- lane without the items a webhook appended to it in the same step (accept.lua), or the reverse.
-- Answers a flat list: name, milliseconds to live (-1: none), DUMP payload, name, ...
-- ARGV: pattern
local found = {}
local cursor = '0'
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = page[1]
  for _, name in ipairs(page[2]) do
    found[#found + 1] = name
    found[#found + 1] = redis.call('PTTL', name)
    found[#found + 1] = redis.call('DUMP', name)
  end
until cursor == '0'
return found
