-- What a service with the ledger (issue 14) keeps beside the seeded rows,
-- filled in as its migration fills it in for an existing database: each
-- loan's schedule as approved, and each payment's value date (the day it
-- was recorded) and current portions (those it was recorded with). The
-- approved schedule remembers each installment's row id (issue 15).
INSERT INTO approved_installments (loan_id, number, due_date, principal_minor, interest_minor)
SELECT loan_id, number, due_date, principal_minor, interest_minor FROM installments
ON CONFLICT DO NOTHING;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_name = 'approved_installments' AND column_name = 'installment_id') THEN
        UPDATE approved_installments a SET installment_id = i.id
        FROM installments i WHERE i.loan_id = a.loan_id AND i.number = a.number;
    END IF;
END $$;

UPDATE payments
SET value_date = (paid_at AT TIME ZONE 'UTC')::date,
    current_principal_minor = principal_minor,
    current_interest_minor = interest_minor,
    current_penalty_minor = penalty_minor
WHERE value_date = '1970-01-01';

-- What each loan's payments paid of principal and interest (issue 16),
-- as the migration fills it in for an existing database.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_name = 'loans' AND column_name = 'principal_paid_minor') THEN
        UPDATE loans l SET
            principal_paid_minor = l.principal_minor - s.unpaid,
            interest_paid_minor = s.interest_paid
        FROM (SELECT loan_id, SUM(principal_minor - principal_paid_minor) AS unpaid,
                     SUM(interest_paid_minor) AS interest_paid
              FROM installments GROUP BY loan_id) s
        WHERE l.id = s.loan_id;
    END IF;
END $$;
-- The loans just rewritten, compacted as freshly seeded ones are.
VACUUM FULL ANALYZE loans;

VACUUM ANALYZE approved_installments;
-- The UPDATE above left a dead copy of every payment row and index entry:
-- rewrite the table compactly, as a freshly seeded one is.
VACUUM FULL ANALYZE payments;
