//! Every table the service needs: users and their profiles and refresh
//! sessions, loans with their installments and payments, idempotency keys,
//! notifications, the audit log and its archive, and scheduled-job runs.
//!
//! Money columns are `BIGINT` minor units (`*_minor`); rates are decimal
//! text. Indexes cover every foreign key and every API filter.

use sea_orm_migration::prelude::*;

use super::Dialect;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE TABLE users (
    id {uuid} PRIMARY KEY,
    email TEXT NOT NULL,
    username TEXT NOT NULL,
    -- lower-cased username: uniqueness is case-insensitive on both databases
    username_key TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('ADMIN', 'MANAGER', 'USER')),
    created_at {ts} NOT NULL DEFAULT {now},
    updated_at {ts} NOT NULL DEFAULT {now}
);
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE UNIQUE INDEX users_username_key ON users (username_key);
CREATE INDEX users_role_idx ON users (role, id);

CREATE TABLE profiles (
    user_id {uuid} PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    phone_number TEXT,
    address TEXT,
    date_of_birth {date},
    created_at {ts} NOT NULL DEFAULT {now},
    updated_at {ts} NOT NULL DEFAULT {now}
);

-- One row per refresh token. A login starts a family; each refresh rotates
-- the token into a new row of the same family.
CREATE TABLE refresh_sessions (
    id {uuid} PRIMARY KEY,
    user_id {uuid} NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id {uuid} NOT NULL,
    token_hash TEXT NOT NULL,
    expires_at {ts} NOT NULL,
    rotated_at {ts},
    revoked_at {ts},
    revoked_reason TEXT,
    ip TEXT,
    user_agent TEXT,
    created_at {ts} NOT NULL DEFAULT {now}
);
CREATE UNIQUE INDEX refresh_sessions_token_hash_key ON refresh_sessions (token_hash);
CREATE INDEX refresh_sessions_user_idx ON refresh_sessions (user_id);
CREATE INDEX refresh_sessions_family_idx ON refresh_sessions (family_id);
CREATE INDEX refresh_sessions_expires_idx ON refresh_sessions (expires_at);

CREATE TABLE loans (
    id {uuid} PRIMARY KEY,
    user_id {uuid} NOT NULL REFERENCES users (id),
    status TEXT NOT NULL
        CHECK (status IN ('PENDING', 'APPROVED', 'REJECTED', 'CANCELLED', 'OVERDUE', 'PAID')),
    currency TEXT NOT NULL,
    principal_minor BIGINT NOT NULL CHECK (principal_minor > 0),
    annual_interest_rate TEXT NOT NULL,
    term_months INTEGER NOT NULL CHECK (term_months BETWEEN 1 AND 360),
    purpose TEXT,
    installment_minor BIGINT NOT NULL DEFAULT 0,
    -- sum of principal and interest over the schedule
    total_payable_minor BIGINT NOT NULL DEFAULT 0,
    total_paid_minor BIGINT NOT NULL DEFAULT 0 CHECK (total_paid_minor >= 0),
    -- late fees applied, and how much of them has been paid
    penalties_minor BIGINT NOT NULL DEFAULT 0 CHECK (penalties_minor >= 0),
    penalties_paid_minor BIGINT NOT NULL DEFAULT 0 CHECK (penalties_paid_minor >= 0),
    next_due_date {date},
    first_due_date {date},
    approved_by {uuid} REFERENCES users (id),
    approved_at {ts},
    rejected_by {uuid} REFERENCES users (id),
    rejected_at {ts},
    rejection_reason TEXT,
    cancelled_at {ts},
    paid_off_at {ts},
    created_at {ts} NOT NULL DEFAULT {now},
    updated_at {ts} NOT NULL DEFAULT {now},
    CHECK (total_paid_minor <= total_payable_minor + penalties_minor),
    CHECK (penalties_paid_minor <= penalties_minor)
);
CREATE INDEX loans_user_idx ON loans (user_id, id);
CREATE INDEX loans_user_status_idx ON loans (user_id, status, id);
CREATE INDEX loans_status_idx ON loans (status, id);
CREATE INDEX loans_approved_by_idx ON loans (approved_by);
CREATE INDEX loans_rejected_by_idx ON loans (rejected_by);

CREATE TABLE installments (
    id {uuid} PRIMARY KEY,
    loan_id {uuid} NOT NULL REFERENCES loans (id) ON DELETE CASCADE,
    -- the borrower, copied from the loan so per-user overdue lists need no join
    user_id {uuid} NOT NULL REFERENCES users (id),
    number INTEGER NOT NULL CHECK (number >= 1),
    due_date {date} NOT NULL,
    principal_minor BIGINT NOT NULL CHECK (principal_minor >= 0),
    interest_minor BIGINT NOT NULL CHECK (interest_minor >= 0),
    penalty_minor BIGINT NOT NULL DEFAULT 0 CHECK (penalty_minor >= 0),
    principal_paid_minor BIGINT NOT NULL DEFAULT 0,
    interest_paid_minor BIGINT NOT NULL DEFAULT 0,
    penalty_paid_minor BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('PENDING', 'PARTIAL', 'PAID', 'OVERDUE')),
    overdue_since {date},
    -- the late fee is applied at most once per installment, ever
    penalty_applied_on {date},
    paid_at {ts},
    created_at {ts} NOT NULL DEFAULT {now},
    updated_at {ts} NOT NULL DEFAULT {now},
    CHECK (principal_paid_minor BETWEEN 0 AND principal_minor),
    CHECK (interest_paid_minor BETWEEN 0 AND interest_minor),
    CHECK (penalty_paid_minor BETWEEN 0 AND penalty_minor)
);
CREATE UNIQUE INDEX installments_loan_number_key ON installments (loan_id, number);
CREATE INDEX installments_user_idx ON installments (user_id);
-- overdue lists and the daily jobs only ever look at unpaid installments
CREATE INDEX installments_unpaid_due_idx ON installments (due_date, loan_id, number)
    WHERE status <> 'PAID';
CREATE INDEX installments_user_unpaid_due_idx ON installments (user_id, due_date, loan_id, number)
    WHERE status <> 'PAID';

CREATE TABLE payments (
    id {uuid} PRIMARY KEY,
    loan_id {uuid} NOT NULL REFERENCES loans (id),
    -- the borrower
    user_id {uuid} NOT NULL REFERENCES users (id),
    recorded_by {uuid} NOT NULL REFERENCES users (id),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    principal_minor BIGINT NOT NULL CHECK (principal_minor >= 0),
    interest_minor BIGINT NOT NULL CHECK (interest_minor >= 0),
    penalty_minor BIGINT NOT NULL CHECK (penalty_minor >= 0),
    currency TEXT NOT NULL,
    -- the loan right after this payment, as the receipt states it
    loan_status_after TEXT NOT NULL,
    loan_outstanding_after_minor BIGINT NOT NULL,
    idempotency_key TEXT,
    paid_at {ts} NOT NULL,
    created_at {ts} NOT NULL DEFAULT {now},
    CHECK (principal_minor + interest_minor + penalty_minor = amount_minor)
);
CREATE INDEX payments_loan_idx ON payments (loan_id, id);
CREATE INDEX payments_user_idx ON payments (user_id, id);
CREATE INDEX payments_recorded_by_idx ON payments (recorded_by);

-- How each payment was spread over installments.
CREATE TABLE payment_allocations (
    payment_id {uuid} NOT NULL REFERENCES payments (id) ON DELETE CASCADE,
    installment_id {uuid} NOT NULL REFERENCES installments (id) ON DELETE CASCADE,
    principal_minor BIGINT NOT NULL,
    interest_minor BIGINT NOT NULL,
    penalty_minor BIGINT NOT NULL,
    PRIMARY KEY (payment_id, installment_id)
);
CREATE INDEX payment_allocations_installment_idx ON payment_allocations (installment_id);

CREATE TABLE idempotency_keys (
    user_id {uuid} NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL,
    request_fingerprint TEXT NOT NULL,
    response_status INTEGER NOT NULL,
    response_body TEXT NOT NULL,
    created_at {ts} NOT NULL DEFAULT {now},
    expires_at {ts} NOT NULL,
    PRIMARY KEY (user_id, idempotency_key)
);
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);

CREATE TABLE notifications (
    id {uuid} PRIMARY KEY,
    user_id {uuid} NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    loan_id {uuid} REFERENCES loans (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('LOAN_APPROVED', 'LOAN_REJECTED', 'PAYMENT_RECEIVED',
        'PAYMENT_DUE_SOON', 'PAYMENT_OVERDUE', 'PENALTY_APPLIED', 'LOAN_PAID')),
    title TEXT NOT NULL,
    message TEXT NOT NULL,
    -- (installment, kind, date) for notifications written by jobs, so a
    -- re-run can never write one twice
    dedup_key TEXT,
    read_at {ts},
    -- outbox: set once the email for this notification is on the queue,
    -- and once it has been sent (so a retried job never sends it twice)
    email_enqueued_at {ts},
    emailed_at {ts},
    created_at {ts} NOT NULL DEFAULT {now}
);
CREATE UNIQUE INDEX notifications_dedup_key ON notifications (dedup_key);
CREATE INDEX notifications_user_idx ON notifications (user_id, id);
CREATE INDEX notifications_user_unread_idx ON notifications (user_id, id) WHERE read_at IS NULL;
CREATE INDEX notifications_loan_idx ON notifications (loan_id);
CREATE INDEX notifications_email_outbox_idx ON notifications (created_at)
    WHERE email_enqueued_at IS NULL;
CREATE INDEX notifications_email_pending_idx ON notifications (email_enqueued_at)
    WHERE emailed_at IS NULL;

-- The audit trail has no foreign keys: it must outlive what it describes.
CREATE TABLE audit_logs (
    id {uuid} PRIMARY KEY,
    actor_id {uuid},
    action TEXT NOT NULL,
    entity_type TEXT,
    entity_id {uuid},
    details {json} NOT NULL,
    ip TEXT,
    request_id TEXT,
    created_at {ts} NOT NULL DEFAULT {now}
);
CREATE INDEX audit_logs_created_idx ON audit_logs (created_at, id);
CREATE INDEX audit_logs_actor_idx ON audit_logs (actor_id, id);
CREATE INDEX audit_logs_entity_idx ON audit_logs (entity_id, id);
CREATE INDEX audit_logs_action_idx ON audit_logs (action, id);

CREATE TABLE audit_logs_archive (
    id {uuid} PRIMARY KEY,
    actor_id {uuid},
    action TEXT NOT NULL,
    entity_type TEXT,
    entity_id {uuid},
    details {json} NOT NULL,
    ip TEXT,
    request_id TEXT,
    created_at {ts} NOT NULL,
    archived_at {ts} NOT NULL DEFAULT {now}
);
CREATE INDEX audit_logs_archive_created_idx ON audit_logs_archive (created_at);
CREATE INDEX audit_logs_archive_entity_idx ON audit_logs_archive (entity_id);
CREATE INDEX audit_logs_archive_actor_idx ON audit_logs_archive (actor_id);

-- Runs of the scheduled jobs. A scheduled run is claimed by inserting its
-- (job, period) row: with several instances only one insert succeeds.
CREATE TABLE job_runs (
    id {uuid} PRIMARY KEY,
    job TEXT NOT NULL,
    period TEXT NOT NULL,
    as_of {date} NOT NULL,
    triggered_by TEXT NOT NULL CHECK (triggered_by IN ('SCHEDULE', 'API', 'CLI')),
    instance TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('RUNNING', 'SUCCEEDED', 'FAILED')),
    processed BIGINT NOT NULL DEFAULT 0,
    details {json},
    started_at {ts} NOT NULL DEFAULT {now},
    finished_at {ts}
);
CREATE UNIQUE INDEX job_runs_scheduled_period_key ON job_runs (job, period)
    WHERE triggered_by = 'SCHEDULE';
CREATE INDEX job_runs_job_idx ON job_runs (job, started_at);
"#;

const DOWN: &str = r#"
DROP TABLE job_runs;
DROP TABLE audit_logs_archive;
DROP TABLE audit_logs;
DROP TABLE notifications;
DROP TABLE idempotency_keys;
DROP TABLE payment_allocations;
DROP TABLE payments;
DROP TABLE installments;
DROP TABLE loans;
DROP TABLE refresh_sessions;
DROP TABLE profiles;
DROP TABLE users;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_statements(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_statements(manager, DOWN).await
    }
}

pub(super) async fn run_statements(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    let dialect = Dialect::for_backend(manager.get_database_backend());
    let connection = manager.get_connection();
    for statement in split_statements(&dialect.render(sql)) {
        connection.execute_unprepared(&statement).await?;
    }
    Ok(())
}

/// Splits a script on `;` at line ends, dropping `--` comments. Our DDL
/// has no semicolons inside literals, so this is enough.
fn split_statements(script: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in script.lines() {
        let code = line.split("--").next().unwrap_or("").trim_end();
        if code.trim().is_empty() {
            continue;
        }
        current.push_str(code);
        current.push('\n');
        if code.ends_with(';') {
            statements.push(std::mem::take(&mut current));
        }
    }
    if !current.trim().is_empty() {
        statements.push(current);
    }
    statements
}
