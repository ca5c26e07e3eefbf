-- Leases of dynamic credentials. Rows, not barrier entries, so the sweeper can page through
-- what is due by index without loading anything else (DESIGN.md rule 6). Nothing secret is
-- stored here: the password of a dynamic role is never stored at all.
CREATE TABLE leases (
    id              TEXT    NOT NULL PRIMARY KEY,   -- database/creds/<role>/<random>
    database_name   TEXT    NOT NULL,
    role_name       TEXT    NOT NULL,
    username        TEXT    NOT NULL,               -- the PostgreSQL role
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'active', 'revoking', 'revoked')),
    issued_at       INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    max_expires_at  INTEGER NOT NULL,
    last_renewal    INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,     -- failed revocation attempts
    next_attempt_at INTEGER,
    last_error      TEXT,
    revoked_at      INTEGER
) WITHOUT ROWID;

-- The sweeper's two queries: live leases by expiry, revocations waiting for a retry.
CREATE INDEX leases_by_expiry ON leases (state, expires_at);
CREATE INDEX leases_by_retry ON leases (state, next_attempt_at);
