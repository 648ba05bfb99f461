dofile("bench/lua/common.lua")
-- A staff member opening the queue of decisions waiting for them: one
-- page of 100 pending decisions, newest first.
request = function()
  return wrk.format("GET", "/decisions?status=PENDING&limit=100",
    { ["Authorization"] = "Bearer " .. staff_token })
end
