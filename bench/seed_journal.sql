-- The journal a service with the books (issue 28) keeps for the seeded
-- rows, as its upgrade books an existing database: on the day of the
-- seeding, one DISBURSEMENT per approved loan (valued on its approval
-- date) and one REPAYMENT per posted payment (its current portions,
-- valued on its value date), and the daily totals the trial balance sums.
-- An entry's lines are its account columns (a debit above zero, a credit
-- below). Ids are derived from the loan's and the payment's, so a re-run
-- adds nothing.
INSERT INTO journal_entries (id, kind, loan_id, payment_id, booking_date, value_date, posted_at,
                             currency, cash_minor, loans_receivable_minor)
SELECT md5('disbursement-' || l.id)::uuid, 'DISBURSEMENT', l.id, NULL, CURRENT_DATE,
       (l.approved_at AT TIME ZONE 'UTC')::date, now(), l.currency,
       -l.principal_minor, l.principal_minor
FROM loans l WHERE l.approved_at IS NOT NULL
ON CONFLICT DO NOTHING;

INSERT INTO journal_entries (id, kind, loan_id, payment_id, booking_date, value_date, posted_at,
                             currency, cash_minor, loans_receivable_minor, interest_income_minor,
                             fee_income_minor)
SELECT md5('repayment-' || p.id)::uuid, 'REPAYMENT', p.loan_id, p.id, CURRENT_DATE, p.value_date,
       now(), p.currency, p.amount_minor, -p.current_principal_minor, -p.current_interest_minor,
       -p.current_penalty_minor
FROM payments p WHERE p.status = 'POSTED'
ON CONFLICT DO NOTHING;

-- The totals, from the entries, in slot 0 of each booking day.
DELETE FROM journal_day_totals;
INSERT INTO journal_day_totals (booking_date, slot, cash_debit_minor, cash_credit_minor,
                                loans_receivable_debit_minor, loans_receivable_credit_minor,
                                interest_income_debit_minor, interest_income_credit_minor,
                                fee_income_debit_minor, fee_income_credit_minor)
SELECT booking_date, 0,
       SUM(GREATEST(cash_minor, 0)), SUM(GREATEST(-cash_minor, 0)),
       SUM(GREATEST(loans_receivable_minor, 0)), SUM(GREATEST(-loans_receivable_minor, 0)),
       SUM(GREATEST(interest_income_minor, 0)), SUM(GREATEST(-interest_income_minor, 0)),
       SUM(GREATEST(fee_income_minor, 0)), SUM(GREATEST(-fee_income_minor, 0))
FROM journal_entries GROUP BY booking_date;
-- Today's other slots, as the service's first posting in each makes them
-- (the pgbench limit's plain update then finds its row, as the service's
-- does from then on).
INSERT INTO journal_day_totals (booking_date, slot)
SELECT CURRENT_DATE, slot FROM generate_series(0, 15) slot
ON CONFLICT DO NOTHING;

VACUUM ANALYZE journal_entries;
VACUUM ANALYZE journal_day_totals;
