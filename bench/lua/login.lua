dofile("bench/lua/common.lua")
request = function()
  local b = pick()
  return wrk.format("POST", "/auth/login", { ["Content-Type"] = "application/json" },
    '{"username":"' .. b.name .. '","password":"bench password 1"}')
end
