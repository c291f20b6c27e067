-- A send the partner refused: its in-flight record goes (nothing to look for), but never a
-- result another run recorded meanwhile in the same key (app/bridge/effects.py). The older
-- versions' separate `flight` key goes too.
-- KEYS: done flight
-- ARGV: mark
local raw = redis.call('GET', KEYS[1])
if raw and string.sub(raw, 1, #ARGV[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('DEL', KEYS[2])
return 1
