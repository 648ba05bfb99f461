-- Load-benchmark data, with ids derived from numbers (md5 → uuid) so that
-- pgbench scripts can name the same rows the HTTP scenarios use.
--   psql -v first=1 -v last=500 -v hash="'$argon2id$…'" -f seed.sql
-- Users 1..10000 (created when first = 1); loans :first..:last, five per
-- user, each of 20 monthly installments of 1000.00 at 0 %. Installments
-- due more than 60 days ago are paid, each by a payment of its own; the
-- other past ones are overdue with their late fee charged, as the daily
-- overdue-check leaves them.

\if :{?users}
INSERT INTO users (id, email, username, username_key, password_hash, role)
SELECT md5('u' || k)::uuid, 'user' || k || '@bench.example', 'user' || k, 'user' || k, :hash, 'USER'
FROM generate_series(1, 10000) k;
\endif

INSERT INTO loans (id, user_id, status, currency, principal_minor, annual_interest_rate, term_months,
                   installment_minor, total_payable_minor, first_due_date, approved_at)
SELECT md5(n::text)::uuid, md5('u' || (1 + n % 10000))::uuid, 'APPROVED', 'USD', 2000000, '0.0', 20,
       100000, 2000000, CURRENT_DATE - (n % 400), now()
FROM generate_series(:first, :last) n;

INSERT INTO installments (id, loan_id, user_id, number, due_date, principal_minor, interest_minor,
                          principal_paid_minor, status, paid_at, penalty_minor, penalty_applied_on)
SELECT md5(n || '-' || k)::uuid, md5(n::text)::uuid, md5('u' || (1 + n % 10000))::uuid, k,
       (CURRENT_DATE - (n % 400) + ((k - 1) || ' months')::interval)::date, 100000, 0,
       CASE WHEN (CURRENT_DATE - (n % 400) + ((k - 1) || ' months')::interval)::date < CURRENT_DATE - 60
            THEN 100000 ELSE 0 END,
       CASE WHEN (CURRENT_DATE - (n % 400) + ((k - 1) || ' months')::interval)::date < CURRENT_DATE - 60 THEN 'PAID'
            WHEN (CURRENT_DATE - (n % 400) + ((k - 1) || ' months')::interval)::date < CURRENT_DATE THEN 'OVERDUE'
            ELSE 'PENDING' END,
       CASE WHEN (CURRENT_DATE - (n % 400) + ((k - 1) || ' months')::interval)::date < CURRENT_DATE - 60
            THEN now() ELSE NULL END,
       -- the daily overdue-check has run: each overdue one carries its
       -- 5 % late fee (50.00), decided the day after its due date
       CASE WHEN (CURRENT_DATE - (n % 400) + ((k - 1) || ' months')::interval)::date
                 BETWEEN CURRENT_DATE - 60 AND CURRENT_DATE - 1 THEN 5000 ELSE 0 END,
       CASE WHEN (CURRENT_DATE - (n % 400) + ((k - 1) || ' months')::interval)::date
                 BETWEEN CURRENT_DATE - 60 AND CURRENT_DATE - 1
            THEN (CURRENT_DATE - (n % 400) + ((k - 1) || ' months')::interval)::date + 1 END
FROM generate_series(:first, :last) n CROSS JOIN generate_series(1, 20) k;

-- Loan totals and status agree with their installments.
UPDATE loans l SET
    total_paid_minor = s.paid,
    penalties_minor = s.penalties,
    status = CASE WHEN s.overdue > 0 THEN 'OVERDUE' ELSE 'APPROVED' END,
    next_due_date = s.next_due
FROM (SELECT loan_id, SUM(principal_paid_minor) AS paid, SUM(penalty_minor) AS penalties,
             COUNT(*) FILTER (WHERE status = 'OVERDUE') AS overdue,
             MIN(due_date) FILTER (WHERE status <> 'PAID') AS next_due
      FROM installments i
      WHERE i.loan_id IN (SELECT md5(n::text)::uuid FROM generate_series(:first, :last) n)
      GROUP BY loan_id) s
WHERE l.id = s.loan_id;

-- The payment history behind the paid installments, one payment each, so
-- that the payment tables start the way a running lender's do rather than
-- empty. (On an empty payments table PostgreSQL plans the foreign-key
-- check of each new allocation as a sequential scan, and a long-lived
-- connection keeps that plan until the next ANALYZE: a pgbench run, on
-- fresh connections, would be measured against a handicapped service.)
INSERT INTO payments (id, loan_id, user_id, recorded_by, amount_minor, principal_minor, interest_minor,
                      penalty_minor, currency, loan_status_after, loan_outstanding_after_minor, paid_at, created_at)
SELECT md5('p-' || i.id)::uuid, i.loan_id, i.user_id, i.user_id, 100000, 100000, 0, 0, 'USD', 'APPROVED',
       2000000 - 100000 * i.number, i.paid_at, i.paid_at
FROM installments i
WHERE i.status = 'PAID' AND i.loan_id IN (SELECT md5(n::text)::uuid FROM generate_series(:first, :last) n);

INSERT INTO payment_allocations (payment_id, installment_id, principal_minor, interest_minor, penalty_minor)
SELECT md5('p-' || i.id)::uuid, i.id, 100000, 0, 0
FROM installments i
WHERE i.status = 'PAID' AND i.loan_id IN (SELECT md5(n::text)::uuid FROM generate_series(:first, :last) n);

ANALYZE;
