-- The same movement as minimal_tx.sql in one statement (its own implicit
-- transaction): the floor of one durable commit per round trip.
\set n random(1, 50000)
WITH moved AS (UPDATE bench_accounts SET balance_minor = balance_minor + 1 WHERE id = :n RETURNING id)
INSERT INTO bench_movements (account_id, amount_minor) SELECT id, 1 FROM moved;
