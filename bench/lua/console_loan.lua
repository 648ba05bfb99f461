dofile("bench/lua/common.lua")
-- A loan officer opening a loan in the console: the page of a
-- 360-installment loan with 360 payments (figures, schedule, payments,
-- journal), as one signed-in staff member.
local session, loan = io.open("bench/out/console.txt"):read("*l"):match("(%S+) (%S+)")
request = function()
  return wrk.format("GET", "/console/loans/" .. loan, { ["Cookie"] = "lt_console=" .. session })
end
