dofile("bench/lua/common.lua")
request = function()
  local b = pick()
  return wrk.format("GET", "/loans/" .. b.loan, { ["Authorization"] = "Bearer " .. b.token })
end
