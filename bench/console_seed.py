"""Seeds what the console benchmark reads, through the API: a borrower
with a 360-installment loan carrying 360 payments, and a console session
of the bench admin. Writes bench/out/console.txt: the session cookie's
value and the loan id.
Usage: console_seed.py BASE_URL ADMIN_USERNAME ADMIN_PASSWORD"""
import http.cookiejar, json, re, sys, urllib.parse, urllib.request

base, admin, password = sys.argv[1], sys.argv[2], sys.argv[3]


def call(method, path, body=None, token=None):
    request = urllib.request.Request(base + path, method=method)
    if body is not None:
        request.data = json.dumps(body).encode()
        request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", "Bearer " + token)
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"null")


staff = call("POST", "/auth/login", {"username": admin, "password": password})["accessToken"]
borrower = call("POST", "/auth/register", {"email": "console@bench.example", "username": "consolebench",
                                           "password": "bench password 1"})["accessToken"]
loan = call("POST", "/loans/apply", {"amount": "360000.00", "termMonths": 360}, borrower)["id"]
call("PATCH", f"/loans/{loan}/approve", {"annualInterestRate": "6"}, staff)
for _ in range(360):
    call("POST", f"/payments/{loan}", {"amount": "10.00"}, staff)

# Sign in as a browser would: the sign-in page's token, then the form.
jar = http.cookiejar.CookieJar()
browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
page = browser.open(base + "/console").read().decode()
csrf = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page).group(1)
form = urllib.parse.urlencode({"csrf_token": csrf, "identifier": admin, "password": password}).encode()
browser.open(base + "/console/sign-in", form).read()
session = next(cookie.value for cookie in jar if cookie.name == "lt_console")
with open("bench/out/console.txt", "w") as out:
    out.write(f"{session} {loan}\n")
