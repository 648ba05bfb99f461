dofile("bench/lua/common.lua")
request = function()
  local b = pick()
  return wrk.format("GET", "/loans/user/" .. b.user, { ["Authorization"] = "Bearer " .. b.token })
end
