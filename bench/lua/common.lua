-- Shared by the scenarios: borrowers from bench/out/users.txt (or $BENCH_USERS)
-- ("token user_id loan_id username"), a random one per request, and a
-- summary line for bench/run.sh.
borrowers = {}
for line in io.lines(os.getenv("BENCH_USERS") or "bench/out/users.txt") do
  local token, user, loan, name = line:match("(%S+) (%S+) (%S+) (%S+)")
  borrowers[#borrowers + 1] = { token = token, user = user, loan = loan, name = name }
end
staff_token = io.open("bench/out/staff.txt"):read("*l")

function pick()
  return borrowers[math.random(#borrowers)]
end

function setup(thread)
  thread:set("id", math.random(1, 1000000))
end

function init(args)
  math.randomseed(id or os.time())
end

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout + summary.errors.status
  io.write(string.format("RESULT %.1f %.3f %.3f %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    errors, summary.requests))
end
