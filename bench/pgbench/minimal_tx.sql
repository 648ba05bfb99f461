-- The minimal durable money movement: one balance row updated and one
-- movement row written, in a transaction of their own, committed with
-- the server's default durability (synchronous_commit on).
\set n random(1, 50000)
BEGIN;
UPDATE bench_accounts SET balance_minor = balance_minor + 1 WHERE id = :n;
INSERT INTO bench_movements (account_id, amount_minor) VALUES (:n, 1);
COMMIT;
