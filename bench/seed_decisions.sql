-- Four eyes (issue 29) at the scale of a busy lender: 100 000 decisions,
-- of which 100 are still pending, about the seeded loans, requested and
-- decided by the bench admin. Ids are UUIDv7-shaped and time-ordered like
-- the service's (the list pages by id), the pending ones scattered among
-- the rest; one pending decision per loan, as the partial unique index
-- wants. A re-run adds nothing.
INSERT INTO decisions (id, action, loan_id, payment_id, subject_id, request, status,
                       requested_by, requested_at, decided_by, decided_at, reason)
SELECT
    -- 48 bits of milliseconds, then the version nibble, then randomness.
    (lpad(to_hex((extract(epoch FROM at) * 1000)::bigint), 12, '0')
        || '7' || substr(md5('decision-' || n), 1, 19))::uuid,
    'APPROVE_LOAN', l.id, NULL, l.id, '{}',
    CASE WHEN n % 1000 = 500 THEN 'PENDING' WHEN n % 7 = 0 THEN 'REJECTED' ELSE 'CONFIRMED' END,
    u.id, at,
    CASE WHEN n % 1000 = 500 THEN NULL ELSE u.id END,
    CASE WHEN n % 1000 = 500 THEN NULL ELSE at + interval '1 hour' END,
    CASE WHEN n % 7 = 0 AND n % 1000 <> 500 THEN 'not this time' END
FROM generate_series(1, 100000) AS n
CROSS JOIN LATERAL (SELECT now() - interval '400 days' + n * interval '5 minutes' AS at) t
JOIN (SELECT id, row_number() OVER (ORDER BY id) AS k FROM loans) l
  ON l.k = CASE WHEN n % 1000 = 500 THEN n / 1000 + 1
                ELSE n % (SELECT COUNT(*) FROM loans) + 1 END
CROSS JOIN (SELECT id FROM users WHERE username = 'benchadmin') u
ON CONFLICT DO NOTHING;
VACUUM ANALYZE decisions;
