-- The two queries of GET /payments/overdue (first page, as staff): the
-- page of overdue installments, then the currencies of their loans.
SELECT * FROM installments WHERE status <> 'PAID' AND due_date < CURRENT_DATE ORDER BY due_date DESC, loan_id DESC, number DESC LIMIT 21;
SELECT * FROM loans WHERE id IN (SELECT loan_id FROM installments WHERE status <> 'PAID' AND due_date < CURRENT_DATE ORDER BY due_date DESC, loan_id DESC, number DESC LIMIT 21);
