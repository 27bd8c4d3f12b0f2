-- Accounts. Flags are integers (0/1): sqlx's Any driver cannot decode SQLite booleans, and
-- one representation keeps one query set for both backends.
CREATE TABLE users (
    id              BIGSERIAL PRIMARY KEY,
    dj_name         TEXT    NOT NULL,
    email           TEXT    NOT NULL,
    password_hash   TEXT    NOT NULL,
    timezone        TEXT    NOT NULL DEFAULT 'UTC',
    stream_key      TEXT    NOT NULL,
    is_active       BIGINT NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    is_admin        BIGINT NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    profile_picture TEXT,
    created_at      BIGINT  NOT NULL
);
CREATE UNIQUE INDEX users_dj_name_key ON users (lower(dj_name));
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE UNIQUE INDEX users_stream_key_key ON users (stream_key);

-- The queue engine's snapshot (order, lead's remaining time, settings): one row, replaced
-- on every change so a restart can restore it.
CREATE TABLE queue_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    snapshot   TEXT    NOT NULL,
    updated_at BIGINT  NOT NULL
);
