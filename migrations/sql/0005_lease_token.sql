-- The token each credential was obtained with (the keyed hash the token store addresses it
-- by, not the token), so that revoking or expiring a token revokes the leases it obtained, as
-- in Vault. Empty for credentials obtained by a bound identity without a token.
ALTER TABLE leases ADD COLUMN token_hash TEXT NOT NULL DEFAULT '';
CREATE INDEX leases_by_token ON leases (token_hash, state);
