-- wrk script: POST a 1.5 KB JSON webhook and print one machine-readable line.
local pad = string.rep("x", 1322)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-token"
wrk.body = '{"title":"disk almost full on db-7","severity":"warning",' ..
           '"status":"firing","url":"https://grafana.example/d/abc",' ..
           '"labels":{"team":"storage","env":"prod","host":"db-7"},' ..
           '"text":"' .. pad .. '"}'

done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format("RESULT requests=%d rps=%.1f p50_us=%d p99_us=%d " ..
                         "non2xx=%d socket_errors=%d body=%d\n",
    summary.requests, summary.requests / secs,
    latency:percentile(50), latency:percentile(99),
    summary.errors.status,
    summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, #wrk.body))
end
