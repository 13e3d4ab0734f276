-- GET /hotels/ with a uniformly random tenant per request among t0001..tNNNN.
--   wrk ... -s bench/lua/tenants.lua URL -- N
-- Each tenant tXXXX holds exactly one hotel whose name and location are "tXXXX" and
-- whose description is "bench hotel tXXXX" (bench/http.sh seeds them), so a response is
-- ok only with status 200 and exactly that one-hotel body, all three fields naming the
-- same tenant. wrk does not tell which request a response answers, so the tenant of a
-- response is also checked in aggregate: per tenant, requests sent and bodies received
-- may differ only by the requests still in flight when wrk stops (one per connection).
-- Prints: CHECK ok=N non200=N wrong_body=N tenants_sent=N tenants_seen=N count_mismatch=N
local threads = {}
local nthreads = 0

function setup(thread)
  nthreads = nthreads + 1
  thread:set("thread_id", nthreads)
  table.insert(threads, thread)
end

function init(args)
  n = tonumber(args[1]) or 1000
  math.randomseed(os.time() * 100 + (thread_id or 0))
  names, reqs = {}, {}
  for i = 1, n do
    names[i] = string.format("t%04d", i)
    reqs[i] = wrk.format("GET", "/hotels/", { ["Tenant-Header"] = names[i] })
  end
  sent, got = {}, {}
  ok, non200, wrong = 0, 0, 0
end

function request()
  local i = math.random(n)
  local t = names[i]
  sent[t] = (sent[t] or 0) + 1
  return reqs[i]
end

-- The id is 1 in a schema tenant (ids per schema) and any number in a row tenant (ids
-- are global in row mode).
local pattern = '^%[{"id":%d+,"name":"(t%d+)","location":"(t%d+)",'
  .. '"description":"bench hotel (t%d+)","picture":null}%]$'

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    return
  end
  local a, b, c = body:match(pattern)
  if a ~= nil and a == b and b == c then
    ok = ok + 1
    got[a] = (got[a] or 0) + 1
  else
    wrong = wrong + 1
  end
end

function done(summary, latency, requests)
  local o, nn, w = 0, 0, 0
  local s, g = {}, {}
  for _, t in ipairs(threads) do
    o = o + t:get("ok"); nn = nn + t:get("non200"); w = w + t:get("wrong")
    for k, v in pairs(t:get("sent")) do s[k] = (s[k] or 0) + v end
    for k, v in pairs(t:get("got")) do g[k] = (g[k] or 0) + v end
  end
  local ns, ng, mismatch = 0, 0, 0
  for k, v in pairs(s) do
    ns = ns + 1
    mismatch = mismatch + math.abs(v - (g[k] or 0))
  end
  for k, v in pairs(g) do
    ng = ng + 1
    if s[k] == nil then mismatch = mismatch + v end
  end
  io.write(string.format(
    "CHECK ok=%d non200=%d wrong_body=%d tenants_sent=%d tenants_seen=%d count_mismatch=%d\n",
    o, nn, w, ns, ng, mismatch))
end
