"""Seeds a freshly started service (the embedded SQLite default) through
its API: USERS borrowers, each with LOANS approved loans of 20 000.00
over 240 months, and writes one line per loan ("token user_id loan_id
username", as bench/out/users.txt) to OUT.
Usage: sqlite_seed.py BASE_URL ADMIN_EMAIL ADMIN_PASSWORD USERS LOANS OUT"""
import json, sys, urllib.request

base, admin_email, admin_password, users, loans, out = sys.argv[1:7]

def call(method, path, body=None, token=None):
    request = urllib.request.Request(base + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", "Bearer " + token)
    with urllib.request.urlopen(request) as response:
        return json.load(response)

admin = call("POST", "/auth/login", {"email": admin_email, "password": admin_password})["accessToken"]
with open(out, "w") as lines:
    for k in range(int(users)):
        name = f"sqliteuser{k}"
        registered = call("POST", "/auth/register",
                          {"email": f"{name}@bench.example", "username": name, "password": "bench password 1"})
        token, user_id = registered["accessToken"], registered["user"]["id"]
        for _ in range(int(loans)):
            loan = call("POST", "/loans/apply", {"amount": "20000.00", "termMonths": 240, "purpose": "bench"}, token)
            call("PATCH", f"/loans/{loan['id']}/approve", {}, admin)
            lines.write(f"{token} {user_id} {loan['id']} {name}\n")
