-- wrk script for bench_render.py: email opens of one block for random recipients.
--
--   wrk -t1 -c8 -d10s -s benchmarks/render_opens.lua URL -- MODE PATH TOTAL SEED FROM COUNT THREADS
--
-- The recipients are a seeded shuffle of 1..TOTAL. MODE "first": every request opens the
-- image for a recipient not asked for before, walking entries FROM+1 .. FROM+COUNT of the
-- shuffle; once all COUNT are used it starts again and those repeats are counted in "wrapped".
-- MODE "reopen": random recipients among those same entries (ones a "first" run already
-- opened). MODE "static": PATH alone, every time. THREADS is wrk's -t.
-- PATH is the image's path ("/i/blk_….png"); recipient n is shopper<n>@example.com.
-- When the run ends, one line "WRK_JSON {...}" carries the counts and latency percentiles;
-- "served" counts the X-Tidings-Served answers that were "render" (or "locked").

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local mode, path, count, from, nthreads
local order = {}
local position = 0
served = 0
other = 0
wrapped = 0

function init(args)
  mode = args[1] or "first"
  path = args[2]
  local total = tonumber(args[3] or "1")
  math.randomseed(tonumber(args[4] or "1"))
  from = tonumber(args[5] or "0")
  count = tonumber(args[6] or total)
  nthreads = tonumber(args[7] or "1")
  for i = 1, total do
    order[i] = i
  end
  for i = #order, 2, -1 do
    local j = math.random(i)
    order[i], order[j] = order[j], order[i]
  end
  -- Each wrk thread takes its own share of the order: thread t starts at t.
  position = tid - 1
  if mode == "reopen" then
    math.randomseed(tonumber(args[4] or "1") * 7919 + tid)
  end
end

local function recipient()
  if mode == "reopen" then
    return order[from + math.random(count)]
  end
  position = position + nthreads
  if position > count then
    wrapped = wrapped + 1
    position = ((position - 1) % count) + 1
  end
  return order[from + position]
end

function request()
  if mode == "static" then
    return wrk.format("GET", path)
  end
  local u = "shopper" .. recipient() .. "%40example.com"
  return wrk.format("GET", path .. "?u=" .. u)
end

function response(status, headers, body)
  local reason = headers["X-Tidings-Served"] or headers["x-tidings-served"]
  if status == 200 and (mode == "static" or reason == "render" or reason == "locked") then
    served = served + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local s = summary.errors
  local total_served, total_other, total_wrapped = 0, 0, 0
  for _, thread in ipairs(threads) do
    total_served = total_served + thread:get("served")
    total_other = total_other + thread:get("other")
    total_wrapped = total_wrapped + thread:get("wrapped")
  end
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,'
    .. '"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,'
    .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,'
    .. '"served":%d,"other":%d,"wrapped":%d}\n',
    summary.requests, summary.duration, summary.bytes, s.connect, s.read, s.write, s.status,
    s.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, total_served, total_other, total_wrapped))
end
