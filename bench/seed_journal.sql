-- The journal a service with the books (issue 28) keeps for the seeded
-- rows, as its upgrade books an existing database: on the day of the
-- seeding, one DISBURSEMENT per approved loan (valued on its approval
-- date) and one REPAYMENT per posted payment (its current portions,
-- valued on its value date), and the daily totals the trial balance sums.
-- Ids are derived from the loan's and the payment's, so a re-run adds
-- nothing.
INSERT INTO journal_entries (id, kind, loan_id, payment_id, booking_date, value_date, posted_at, currency)
SELECT md5('disbursement-' || l.id)::uuid, 'DISBURSEMENT', l.id, NULL, CURRENT_DATE,
       (l.approved_at AT TIME ZONE 'UTC')::date, now(), l.currency
FROM loans l WHERE l.approved_at IS NOT NULL
ON CONFLICT DO NOTHING;
INSERT INTO journal_lines (entry_id, account, debit_minor, credit_minor)
SELECT md5('disbursement-' || l.id)::uuid, a.account,
       CASE a.account WHEN '1100' THEN l.principal_minor ELSE 0 END,
       CASE a.account WHEN '1000' THEN l.principal_minor ELSE 0 END
FROM loans l CROSS JOIN (VALUES ('1000'), ('1100')) a (account)
WHERE l.approved_at IS NOT NULL
ON CONFLICT DO NOTHING;

INSERT INTO journal_entries (id, kind, loan_id, payment_id, booking_date, value_date, posted_at, currency)
SELECT md5('repayment-' || p.id)::uuid, 'REPAYMENT', p.loan_id, p.id, CURRENT_DATE, p.value_date,
       now(), p.currency
FROM payments p WHERE p.status = 'POSTED'
ON CONFLICT DO NOTHING;
INSERT INTO journal_lines (entry_id, account, debit_minor, credit_minor)
SELECT md5('repayment-' || p.id)::uuid, a.account,
       CASE a.account WHEN '1000' THEN p.amount_minor ELSE 0 END,
       CASE a.account WHEN '1100' THEN p.current_principal_minor
                      WHEN '4000' THEN p.current_interest_minor
                      WHEN '4100' THEN p.current_penalty_minor ELSE 0 END
FROM payments p CROSS JOIN (VALUES ('1000'), ('1100'), ('4000'), ('4100')) a (account)
WHERE p.status = 'POSTED'
  AND CASE a.account WHEN '1000' THEN p.amount_minor
                     WHEN '1100' THEN p.current_principal_minor
                     WHEN '4000' THEN p.current_interest_minor
                     ELSE p.current_penalty_minor END > 0
ON CONFLICT DO NOTHING;

-- The totals, from the lines, in slot 0 of each booking day.
DELETE FROM journal_totals;
INSERT INTO journal_totals (booking_date, account, slot, debit_minor, credit_minor)
SELECT e.booking_date, l.account, 0, SUM(l.debit_minor), SUM(l.credit_minor)
FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id
GROUP BY e.booking_date, l.account;

VACUUM ANALYZE journal_entries;
VACUUM ANALYZE journal_lines;
VACUUM ANALYZE journal_totals;
