-- Adds one machine-readable line to wrk's report. Only done() is defined, so wrk keeps sending its
-- prebuilt request and runs no Lua per request: the numbers are the same as without a script.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_SUMMARY {"requests":%d,"durationUs":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"latencyP50Us":%d,"latencyP99Us":%d,"latencyMaxUs":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
