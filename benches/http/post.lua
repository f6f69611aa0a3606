-- wrk script of the HTTP benchmark (benches/http/bench.py): POSTs to
-- /api/events, every event distinct, so each one is stored and none is
-- answered as a duplicate.
--
--   wrk ... -s post.lua URL -- TAG BATCH TOKEN CLIENT
--
-- TAG names the run (a warm-up and the timed run never share an event);
-- BATCH 0 sends one event as an object, N a JSON array of N events; TOKEN
-- goes in `Authorization: Bearer`; CLIENT is the events' client, the one
-- the key was made for.
--
-- Events differ by metric (TAG and the wrk thread) and by value and time (a
-- counter of the thread), so the dedup key (client, metric, timestamp,
-- amount) of each is new.
--
-- At the end it prints one line `WRK-JSON {...}`: requests written, 2xx and
-- other answers, wrk's own socket errors and duration, which the harness
-- checks against what the store holds; and `WRK-BAD status body` for the
-- first answer that was not 2xx, per thread.

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

-- 2024-01-01T00:00:00Z in epoch milliseconds.
local BASE_MS = 1704067200000

function init(args)
  tag, batch, token, client = args[1], tonumber(args[2]), args[3], args[4]
  sent, ok, bad, first_bad = 0, 0, 0, nil
  counter = 0
  metric = tag .. "-t" .. tid
  headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
  }
end

local function event()
  counter = counter + 1
  return string.format(
    '{"source":"%s","payload":{"metric":"%s","value":%d,"timestamp":%d}}',
    client, metric, counter, BASE_MS + counter * 1000)
end

function request()
  local body
  if batch == 0 then
    body = event()
  else
    local items = {}
    for i = 1, batch do
      items[i] = event()
    end
    body = "[" .. table.concat(items, ",") .. "]"
  end
  sent = sent + 1
  return wrk.format("POST", "/api/events", headers, body)
end

function response(status, _, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    bad = bad + 1
    if first_bad == nil then
      first_bad = status .. " " .. string.sub(body or "", 1, 300)
    end
  end
end

function done(summary, latency, _)
  local s, o, b = 0, 0, 0
  for _, t in ipairs(threads) do
    s = s + t:get("sent")
    o = o + t:get("ok")
    b = b + t:get("bad")
    local f = t:get("first_bad")
    if f then
      io.write("WRK-BAD " .. string.gsub(f, "\n", " ") .. "\n")
    end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK-JSON {"sent":%d,"ok":%d,"bad":%d,"requests":%d,"duration_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d,' ..
    '"p50_us":%d,"p99_us":%d}\n',
    s, o, b, summary.requests, summary.duration,
    e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
