dofile("bench/lua/common.lua")
-- As of today, or of one of the last 400 days, at random: "as of any date".
request = function()
  local days = math.random(0, 400)
  local path = "/accounting/trial-balance"
  if days > 0 then
    path = path .. "?asOf=" .. os.date("!%Y-%m-%d", os.time() - days * 86400)
  end
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. staff_token })
end
