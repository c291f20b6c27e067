-- wrk script: POST pre-signed webhook bodies, a different one per request.
-- Usage: wrk ... -s bench/wrk_signed.lua URL -- <bodies prefix>
-- Thread t reads "<prefix>.<t>": one request per line, "<signature> <json body>".
-- If a thread runs out of bodies it starts over and says so in done() (ids would repeat).

local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  sigs, bodies, n, i, wrapped = {}, {}, 0, 0, 0
  for line in io.lines(args[1] .. "." .. tid) do
    local sp = string.find(line, " ", 1, true)
    n = n + 1
    sigs[n] = string.sub(line, 1, sp - 1)
    bodies[n] = string.sub(line, sp + 1)
  end
  path = wrk.path
end

function request()
  i = i + 1
  if i > n then
    i = 1
    wrapped = wrapped + 1
  end
  return wrk.format("POST", path, {["Content-Type"] = "application/json", ["X-ZEvent-Signature"] = sigs[i]},
                    bodies[i])
end

function done(summary, latency, requests)
  local wraps = 0
  for _, t in ipairs(threads) do
    wraps = wraps + (t:get("wrapped") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f,"wraps":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean, wraps))
end
