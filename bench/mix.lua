-- wrk script: 90% of requests carry the valid credential, 10% a wrong one of the same shape.
-- BENCH_HEADER is the header name, BENCH_VALID and BENCH_INVALID its two values.
local name = os.getenv("BENCH_HEADER")
local valid = os.getenv("BENCH_VALID")
local invalid = os.getenv("BENCH_INVALID")
local counter = 0
request = function()
  counter = counter + 1
  local value = valid
  if counter % 10 == 0 then value = invalid end
  return wrk.format("GET", nil, { [name] = value })
end
