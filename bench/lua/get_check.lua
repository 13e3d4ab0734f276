-- GET /hotels/ for one tenant (Tenant-Header), checking every response.
--   wrk ... -s bench/lua/get_check.lua URL -- TENANT EXPECTED_BODY
-- A response counts as ok only with status 200 and exactly EXPECTED_BODY.
-- Prints: CHECK ok=N non200=N wrong_body=N
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  tenant = args[1] or "demo1"
  expected = args[2]
  ok, non200, wrong = 0, 0, 0
  req = wrk.format("GET", "/hotels/", { ["Tenant-Header"] = tenant })
end

function request()
  return req
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  elseif expected ~= nil and body ~= expected then
    wrong = wrong + 1
  else
    ok = ok + 1
  end
end

function done(summary, latency, requests)
  local o, n, w = 0, 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok"); n = n + t:get("non200"); w = w + t:get("wrong")
  end
  io.write(string.format("CHECK ok=%d non200=%d wrong_body=%d\n", o, n, w))
end
