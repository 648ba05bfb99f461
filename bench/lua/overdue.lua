dofile("bench/lua/common.lua")
request = function()
  return wrk.format("GET", "/payments/overdue", { ["Authorization"] = "Bearer " .. staff_token })
end
