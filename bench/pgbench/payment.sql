-- The transaction of POST /payments/{loanId} (no Idempotency-Key), with
-- the same statements in the same order; -D n_first, n_last pick the loan
-- (n_first = n_last for the hot-loan scenario).
\set n random(:n_first, :n_last)
BEGIN;
SELECT * FROM loans WHERE id = md5(:n::text)::uuid LIMIT 1 FOR UPDATE \gset l_
SELECT id AS installment_id, number FROM installments WHERE loan_id = md5(:n::text)::uuid AND status <> 'PAID' ORDER BY number DESC \aset
UPDATE installments SET principal_paid_minor = principal_paid_minor + 1, interest_paid_minor = interest_paid_minor, penalty_paid_minor = penalty_paid_minor, status = 'PARTIAL', paid_at = NULL, updated_at = now() WHERE id = :installment_id;
UPDATE loans SET status = :l_status, total_paid_minor = total_paid_minor + 1, penalties_paid_minor = penalties_paid_minor, next_due_date = next_due_date, paid_off_at = NULL, updated_at = now() WHERE id = md5(:n::text)::uuid;
INSERT INTO payments (id, loan_id, user_id, recorded_by, amount_minor, principal_minor, interest_minor, penalty_minor, currency, loan_status_after, loan_outstanding_after_minor, idempotency_key, paid_at, created_at) VALUES (gen_random_uuid(), md5(:n::text)::uuid, :l_user_id, :l_user_id, 1, 1, 0, 0, 'USD', :l_status, 1000000, NULL, now(), now()) RETURNING id AS payment_id \gset
INSERT INTO payment_allocations (payment_id, installment_id, principal_minor, interest_minor, penalty_minor) VALUES (:payment_id, :installment_id, 1, 0, 0);
INSERT INTO notifications (id, user_id, loan_id, kind, title, message, dedup_key, read_at, email_enqueued_at, emailed_at, created_at) VALUES (gen_random_uuid(), :l_user_id, md5(:n::text)::uuid, 'PAYMENT_RECEIVED', 'Payment received', 'We received your payment of 0.01 USD. Your loan now has 9999.99 USD outstanding.', NULL, NULL, NULL, NULL, now());
INSERT INTO audit_logs (id, actor_id, action, entity_type, entity_id, details, ip, request_id, created_at) VALUES (gen_random_uuid(), :l_user_id, 'PAYMENT_RECORDED', 'PAYMENT', :payment_id, '{"amount": "0.01", "penalty": "0.00", "interest": "0.00", "principal": "0.01", "loanStatus": "OVERDUE", "loanOutstanding": "9999.99"}', '127.0.0.1', '01a21315-ecb3-7567-a470-b1af1837d535', now());
COMMIT;
