-- wrk script for bench_collect.py: realistic Segment `Product Viewed` track events.
--
--   wrk -t1 -c32 -d10s -s benchmarks/segment_events.lua URL -- MODE AUTH NONCE [EVENTS]
--
-- MODE is "batch" (a /v1/batch body of EVENTS messages, default 100) or "track" (one message
-- per request). AUTH is the whole Authorization header value ("Basic base64(writeKey:)").
-- Every messageId is unique: run NONCE, wrk thread number, request counter, index in the batch.
-- When the run ends, one line "WRK_JSON {...}" carries the counts and latency percentiles.

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
  table.insert(threads, thread)
end

local mode, nonce, events_per_batch
local counter = 0
local headers = {}

local products = {
  {"507f1f77bcf86cd799439011", "G-32", "Games", "Monopoly: 3rd Edition", "Hasbro",
   "200 pieces", 18.99, "monopoly-3rd-edition"},
  {"505bd76785ebb509fc183733", "B-7782", "Books", "The Pragmatic Programmer", "Addison-Wesley",
   "20th anniversary", 42.50, "pragmatic-programmer"},
  {"5f3a1c9e2b7d4e0012ab34cd", "SH-441-BLK-42", "Shoes", "Trail Runner GTX", "Salomon",
   "Black / EU 42", 139.00, "trail-runner-gtx"},
  {"60c72b2f9b1e8a3d4c5e6f70", "K-1190", "Kitchen", "Cast Iron Skillet 26 cm", "Lodge",
   "Pre-seasoned", 34.95, "cast-iron-skillet-26"},
  {"61d8e4a1c2b3f4e5d6a7b8c9", "EL-5521", "Electronics", "Noise Cancelling Headphones",
   "Sony", "WH-1000XM5 Silver", 329.99, "wh-1000xm5"},
}

local template = '{"type":"track","event":"Product Viewed",'
  .. '"messageId":"%s-%d-%d-%d","anonymousId":"%08x-2b1c-4d6e-9f0a-%012x",'
  .. '"timestamp":"%s","properties":{"product_id":"%s","sku":"%s","category":"%s",'
  .. '"name":"%s","brand":"%s","variant":"%s","price":%.2f,"quantity":1,"currency":"USD",'
  .. '"position":%d,"url":"https://shop.example.com/products/%s",'
  .. '"image_url":"https://cdn.example.com/images/%s.jpg"},'
  .. '"context":{"library":{"name":"analytics-python","version":"2.3.3"}},'
  .. '"integrations":{}'

function init(args)
  mode = args[1] or "batch"
  nonce = args[3] or "bench"
  events_per_batch = tonumber(args[4] or "100")
  headers["Content-Type"] = "application/json"
  headers["Authorization"] = args[2]
end

local function event(n, i, now)
  local p = products[(n + i) % #products + 1]
  local visitor = (n * 7919 + i) % 1000003
  return string.format(template, nonce, tid, n, i, visitor, visitor, now, p[1], p[2], p[3], p[4],
    p[5], p[6], p[7], (i % 24) + 1, p[8], p[8])
end

function request()
  counter = counter + 1
  local now = os.date("!%Y-%m-%dT%H:%M:%S.000Z")
  local body
  if mode == "batch" then
    local parts = {}
    for i = 1, events_per_batch do
      parts[i] = event(counter, i, now) .. "}"
    end
    body = '{"batch":[' .. table.concat(parts, ",") .. '],"sentAt":"' .. now .. '"}'
  else
    body = event(counter, 0, now) .. ',"sentAt":"' .. now .. '"}'
  end
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  local s = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,'
    .. '"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,'
    .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, s.connect, s.read, s.write, s.status,
    s.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
