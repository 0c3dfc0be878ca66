-- wrk script: POST a 1.5 KB JSON webhook and print one machine-readable line.
-- Like real alert webhooks, most of the bytes are details a receiver may
-- want (kept in data.raw), not the title and text.
--
-- Optional argument (after --): a quota. Each thread stops once that many of
-- its requests were answered 2xx, so a run can post an exact number of
-- webhooks (the caller stops wrk itself when every thread is done).
local pad = string.rep("x", 1166)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-token"
wrk.body = '{"title":"disk almost full on db-7","severity":"warning",' ..
           '"status":"firing","url":"https://grafana.example/d/abc",' ..
           '"text":"/var/lib/postgresql is 91% full and growing 2% a day",' ..
           '"labels":{"team":"storage","env":"prod","host":"db-7"},' ..
           '"details":{"mount":"/var/lib/postgresql","used_bytes":9771823104,' ..
           '"size_bytes":10737418240,"history":"' .. pad .. '"}}'

function init(args)
  local quota = tonumber(args[1] or "") or 0
  if quota > 0 then
    local ok = 0
    -- Defined only with a quota: wrk parses answers for Lua only when
    -- a response function exists, which costs a little throughput.
    response = function(status, headers, body)
      if status >= 200 and status < 300 then
        ok = ok + 1
        if ok >= quota then wrk.thread:stop() end
      end
    end
  end
end

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
