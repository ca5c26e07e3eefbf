-- Mayfly storage schema for PostgreSQL (`storage "postgresql"`), the same tables as SQLite's
-- migrations 0001-0005 in one step. Everything secret in `entries.value` is AEAD-encrypted by
-- the barrier above this layer: PostgreSQL sees ciphertext and paths, never a key or a secret.
-- Paths and lease ids are compared bytewise (COLLATE "C"), as SQLite compares them, so the
-- sorted listings and keyset paging are the same on both stores.

CREATE TABLE entries (
    path       TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    version    BIGINT NOT NULL CHECK (version > 0),
    value      BYTEA  NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Values that must be readable while sealed: the seal configuration and the root key wrapped
-- by the unseal key (itself AEAD-encrypted).
CREATE TABLE system (
    name  TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    value BYTEA NOT NULL
);

-- Leases of dynamic credentials: rows the sweeper pages through by index. Nothing secret.
CREATE TABLE leases (
    id               TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    database_name    TEXT   NOT NULL,
    role_name        TEXT   NOT NULL,
    username         TEXT   NOT NULL,
    state            TEXT   NOT NULL CHECK (state IN ('pending', 'active', 'revoking', 'revoked')),
    issued_at        BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    max_expires_at   BIGINT NOT NULL,
    last_renewal     BIGINT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT,
    last_error       TEXT,
    revoked_at       BIGINT,
    identity         TEXT   NOT NULL DEFAULT '',
    connection_limit INTEGER NOT NULL DEFAULT 0,
    token_hash       TEXT   NOT NULL DEFAULT ''
);

CREATE INDEX leases_by_expiry ON leases (state, expires_at);
CREATE INDEX leases_by_retry ON leases (state, next_attempt_at);
CREATE INDEX leases_by_database ON leases (database_name, state, id);
CREATE INDEX leases_by_identity ON leases (identity, state);
CREATE INDEX leases_by_token ON leases (token_hash, state);
