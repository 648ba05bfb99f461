-- Tables for the minimal durable money movement (issue 17's second
-- limit): one balance row per account, one movement row per transfer.
-- Nothing of the service's schema; only what any ledger must write.
CREATE TABLE bench_accounts (id integer PRIMARY KEY, balance_minor bigint NOT NULL DEFAULT 0);
INSERT INTO bench_accounts (id) SELECT generate_series(1, 50000);
CREATE TABLE bench_movements (
    id bigserial PRIMARY KEY,
    account_id integer NOT NULL,
    amount_minor bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
VACUUM ANALYZE bench_accounts;
