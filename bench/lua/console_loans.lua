dofile("bench/lua/common.lua")
-- The console's loans page: the newest 20 of the whole book, with their
-- borrowers, as one signed-in staff member.
local session = io.open("bench/out/console.txt"):read("*l"):match("(%S+)")
request = function()
  return wrk.format("GET", "/console/loans", { ["Cookie"] = "lt_console=" .. session })
end
