"""Writes bench/out/users.txt: one line per sampled borrower with an HS256
access token (signed with the service's JWT_SECRET), their user id and
one of their loan ids; and bench/out/staff.txt with an ADMIN token.
Usage: tokens.py SECRET ADMIN_ID FIRST_LOAN LAST_LOAN SAMPLE"""
import base64, hashlib, hmac, json, sys, time, uuid

secret, admin_id, first, last, sample = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

def md5_uuid(text):
    return str(uuid.UUID(hashlib.md5(text.encode()).hexdigest()))

def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

def token(sub, role):
    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"sub": sub, "role": role, "iat": now, "exp": now + 4 * 3600,
                             "jti": str(uuid.uuid4())}).encode())
    signature = hmac.new(secret.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64(signature)}"

step = max(1, (last - first + 1) // sample)
with open("bench/out/users.txt", "w") as out:
    for n in range(first, last + 1, step):
        k = 1 + n % 10000
        out.write(f"{token(md5_uuid(f'u{k}'), 'USER')} {md5_uuid(f'u{k}')} {md5_uuid(str(n))} user{k}\n")
with open("bench/out/staff.txt", "w") as out:
    out.write(token(admin_id, "ADMIN") + "\n")
