-- Who obtained each credential (the caller's identity: `unix:uid:1000`, `cert:spiffe://…`,
-- `approle:<role>`, `token:<display name>`), so a leak response can revoke by identity and
-- an exposure report can say who held what. Not secret.
ALTER TABLE leases ADD COLUMN identity TEXT NOT NULL DEFAULT '';

-- Scoped revocations page through one database's live leases.
CREATE INDEX leases_by_database ON leases (database_name, state, id);
