-- The transaction of POST /payments/{loanId} (no Idempotency-Key) of a
-- service that keeps the books (issue 28), with the same statements in the
-- same order as payment.sql plus the journal entry (its lines in its
-- account columns) and the day's totals in its slot (a plain update, as
-- the service sends once the slot's row for the day exists): the loan locked, its
-- unpaid installments read, then every write in one statement of
-- data-modifying CTEs. -D n_first, n_last pick the loan (n_first = n_last for the
-- hot-loan scenario). The payment's id comes from the database here (the
-- service makes it); everything else is bound as the service binds it.
\set n random(:n_first, :n_last)
-- The service takes slots round robin, so that concurrent transactions
-- rarely share one; here each client keeps its own.
\set slot :client_id % 16
BEGIN;
SELECT * FROM loans WHERE id = md5(:n::text)::uuid LIMIT 1 FOR UPDATE \gset l_
SELECT id AS installment_id, number FROM installments WHERE loan_id = md5(:n::text)::uuid AND status <> 'PAID' ORDER BY number DESC \aset
WITH w0 AS (UPDATE installments SET due_date = due_date, principal_minor = principal_minor, interest_minor = interest_minor, penalty_minor = penalty_minor, principal_paid_minor = principal_paid_minor + 1, interest_paid_minor = interest_paid_minor, penalty_paid_minor = penalty_paid_minor, status = 'PARTIAL', overdue_since = overdue_since, penalty_applied_on = penalty_applied_on, paid_at = NULL, updated_at = now() WHERE id = :installment_id),
     w1 AS (UPDATE loans SET status = :l_status, total_paid_minor = total_paid_minor + 1, penalties_minor = penalties_minor, penalties_paid_minor = penalties_paid_minor, installment_minor = installment_minor, total_payable_minor = total_payable_minor, principal_paid_minor = principal_paid_minor + 1, interest_paid_minor = interest_paid_minor, next_due_date = next_due_date, paid_off_at = NULL, updated_at = now() WHERE id = md5(:n::text)::uuid),
     w2 AS (INSERT INTO payments (id, loan_id, user_id, recorded_by, amount_minor, principal_minor, interest_minor, penalty_minor, currency, loan_status_after, loan_outstanding_after_minor, idempotency_key, paid_at, created_at, value_date, status, excess, reversed_at, reversed_by, reversal_reason, current_principal_minor, current_interest_minor, current_penalty_minor) VALUES (gen_random_uuid(), md5(:n::text)::uuid, :l_user_id::uuid, :l_user_id::uuid, 1, 1, 0, 0, 'USD', :l_status, 1000000, NULL, now(), now(), CURRENT_DATE, 'POSTED', 'NEXT_INSTALLMENTS', NULL, NULL, NULL, 1, 0, 0) RETURNING id),
     w3 AS (INSERT INTO payment_allocations (payment_id, installment_id, principal_minor, interest_minor, penalty_minor) SELECT id, :installment_id::uuid, 1, 0, 0 FROM w2),
     w5 AS (INSERT INTO journal_entries (id, kind, loan_id, payment_id, booking_date, value_date, posted_at, currency, cash_minor, loans_receivable_minor, interest_income_minor, fee_income_minor, recoveries_minor, loan_losses_minor) SELECT gen_random_uuid(), 'REPAYMENT', md5(:n::text)::uuid, id, CURRENT_DATE, CURRENT_DATE, now(), 'USD', 1, -1, 0, 0, 0, 0 FROM w2),
     w7 AS (UPDATE journal_day_totals SET cash_debit_minor = cash_debit_minor + 1, cash_credit_minor = cash_credit_minor + 0, loans_receivable_debit_minor = loans_receivable_debit_minor + 0, loans_receivable_credit_minor = loans_receivable_credit_minor + 1, interest_income_debit_minor = interest_income_debit_minor + 0, interest_income_credit_minor = interest_income_credit_minor + 0, fee_income_debit_minor = fee_income_debit_minor + 0, fee_income_credit_minor = fee_income_credit_minor + 0, recoveries_debit_minor = recoveries_debit_minor + 0, recoveries_credit_minor = recoveries_credit_minor + 0, loan_losses_debit_minor = loan_losses_debit_minor + 0, loan_losses_credit_minor = loan_losses_credit_minor + 0 WHERE booking_date = CURRENT_DATE AND slot = :slot),
     w4 AS (INSERT INTO notifications (id, user_id, loan_id, kind, title, message, dedup_key, read_at, email_enqueued_at, emailed_at, created_at) VALUES (gen_random_uuid(), :l_user_id::uuid, md5(:n::text)::uuid, 'PAYMENT_RECEIVED', 'Payment received', 'We received your payment of 0.01 USD. Your loan now has 9999.99 USD outstanding.', NULL, NULL, NULL, NULL, now()))
INSERT INTO audit_logs (id, actor_id, action, entity_type, entity_id, details, ip, request_id, created_at) SELECT gen_random_uuid(), :l_user_id::uuid, 'PAYMENT_RECORDED', 'PAYMENT', id, '{"loanId": "0", "amount": "0.01", "penalty": "0.00", "interest": "0.00", "principal": "0.01", "loanStatus": "OVERDUE", "loanOutstanding": "9999.99"}', '127.0.0.1', '01a21315-ecb3-7567-a470-b1af1837d535', now() FROM w2;
COMMIT;
