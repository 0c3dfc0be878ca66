-- wrk script: Prometheus alerts, one per request, each with an instance
-- label no other request has (so nothing is deduplicated or grouped away).
--
--   wrk ... -s alerts.lua URL -- api STARTS_AT ENDS_AT
--       the body Prometheus POSTs to Alertmanager's /api/v2/alerts: a JSON
--       array of alerts (here one);
--   wrk ... -s alerts.lua URL -- webhook STARTS_AT ENDS_AT
--       the body Alertmanager's webhook_configs receiver POSTs (payload
--       version 4) for a group holding that one alert, with a bearer token.
--
-- Prints the same RESULT line as post.lua.
local mode, starts_at, ends_at = "api", "2026-01-01T00:00:00.000Z", ""
local n = 0

local threads = {}

function setup(thread)
  -- Runs in wrk's main Lua state: number the threads.
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local function labels(inst)
  return '{"alertname":"DiskAlmostFull","severity":"warning",' ..
         '"instance":"' .. inst .. ':9100","job":"node",' ..
         '"device":"/dev/nvme0n1p2","mountpoint":"/var/lib/postgresql",' ..
         '"fstype":"ext4","team":"storage","env":"prod"}'
end

local annotations =
  '{"summary":"Disk almost full on a database host",' ..
  '"description":"/var/lib/postgresql is 91% full and growing 2% a day; ' ..
  'at this rate it is full in 4 days.",' ..
  '"runbook_url":"https://runbooks.example/storage/disk-almost-full"}'

local generator = "http://prometheus.example:9090/graph?g0.expr=" ..
  "node_filesystem_avail_bytes%7Bmountpoint%3D%22%2Fvar%2Flib%2Fpostgresql" ..
  "%22%7D+%2F+node_filesystem_size_bytes+%3C+0.1&g0.tab=1"

local function body(t, i)
  local inst = string.format("db-%d-%d", t, i)
  local l = labels(inst)
  if mode == "webhook" then
    local alert = '{"status":"firing","labels":' .. l ..
      ',"annotations":' .. annotations ..
      ',"startsAt":"' .. starts_at .. '","endsAt":"0001-01-01T00:00:00Z"' ..
      ',"generatorURL":"' .. generator .. '"' ..
      string.format(',"fingerprint":"%08x%08x"}', t, i)
    return '{"receiver":"bench","status":"firing","alerts":[' .. alert ..
      '],"groupLabels":' .. l .. ',"commonLabels":' .. l ..
      ',"commonAnnotations":' .. annotations ..
      ',"externalURL":"http://alertmanager.example:9093","version":"4",' ..
      '"groupKey":"{}:{instance=\\"' .. inst .. ':9100\\"}",' ..
      '"truncatedAlerts":0}'
  end
  local ends = ""
  if ends_at ~= "" then ends = ',"endsAt":"' .. ends_at .. '"' end
  return '[{"labels":' .. l .. ',"annotations":' .. annotations ..
    ',"startsAt":"' .. starts_at .. '"' .. ends ..
    ',"generatorURL":"' .. generator .. '"}]'
end

function init(args)
  mode = args[1] or mode
  starts_at = args[2] or starts_at
  ends_at = args[3] or ends_at
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  body_size = #body(tid or 0, 1)
  if mode == "webhook" then
    wrk.headers["Authorization"] = "Bearer bench-token"
    wrk.headers["User-Agent"] = "Alertmanager/0.25.0"
  end
end

request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, body(tid or 0, n))
end

done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format("RESULT requests=%d rps=%.1f p50_us=%d p99_us=%d " ..
                         "non2xx=%d socket_errors=%d body=%d\n",
    summary.requests, summary.requests / secs,
    latency:percentile(50), latency:percentile(99),
    summary.errors.status,
    summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout,
    threads[1] and threads[1]:get("body_size") or 0))
end
