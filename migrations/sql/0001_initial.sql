-- Mayfly storage schema, version 1.
-- Everything secret in `entries.value` is AEAD-encrypted by the barrier above this layer;
-- the storage layer never sees a key or a plaintext secret.

-- Encrypted entries addressed by path. `version` counts the writes to a path and is part of
-- the ciphertext's associated data, so a value copied to another path or version fails to open.
CREATE TABLE entries (
    path       TEXT    NOT NULL PRIMARY KEY,
    version    INTEGER NOT NULL CHECK (version > 0),
    value      BLOB    NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Values that must be readable while sealed: the seal configuration and the root key
-- wrapped by the unseal key (itself AEAD-encrypted). Nothing here is usable without the
-- unseal key.
CREATE TABLE system (
    name  TEXT NOT NULL PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
