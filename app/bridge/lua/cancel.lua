-- Drop a timer lane's waiting item (an agent answered before the window note was due). A lane
-- a worker holds is left alone: its handler looks at the state itself. 1: cancelled; 0: a
-- worker holds it, or nothing waited (a lane with no item is never due: no ZREM to make).
-- KEYS: lane due lease
-- ARGV: lane_id
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
