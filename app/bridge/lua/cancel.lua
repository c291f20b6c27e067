-- Drop a timer lane's waiting item (an agent answered before the window note was due). A lane
-- a worker holds is left alone: its handler looks at the state itself. 1: cancelled.
-- KEYS: lane due lease
-- ARGV: lane_id
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
