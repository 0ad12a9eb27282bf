-- wrk script of bench/serve.py: POST the given bodies in turn on every connection, stop after `max_requests`
-- answers (wrk's -d bounds the time), and print one JSON line of figures at the end.
-- Arguments (after wrk's `--`): path, max_requests, then one file per body.
local reqs, n, answers, max_requests = {}, 0, 0, 0

function init(args)
  local path = args[1]
  max_requests = tonumber(args[2])
  for k = 3, #args do
    local f = assert(io.open(args[k], "rb"))
    reqs[#reqs + 1] = wrk.format("POST", path, {["Content-Type"] = "application/json"}, f:read("*a"))
    f:close()
  end
end

function request()
  n = n % #reqs + 1
  return reqs[n]
end

function response(status, headers, body)
  answers = answers + 1
  if answers >= max_requests then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
