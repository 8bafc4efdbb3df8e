-- wrk script: POST a body of BODY_BYTES (default 128) on kept-alive
-- connections; prints one JSON line with the figures run.py reads.
wrk.method = "POST"
wrk.body = string.rep("x", tonumber(os.getenv("BODY_BYTES") or "128"))
wrk.headers["Content-Type"] = "application/octet-stream"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT {\"requests\": %d, \"duration_us\": %d, \"p50_us\": %d, \"p99_us\": %d, \"errors\": %d, \"non_2xx\": %d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
