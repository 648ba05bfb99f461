dofile("bench/lua/common.lua")
request = function()
  local b = pick()
  return wrk.format("POST", "/payments/" .. b.loan,
    { ["Authorization"] = "Bearer " .. b.token, ["Content-Type"] = "application/json" },
    '{"amount":"0.01"}')
end
