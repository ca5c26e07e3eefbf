-- Admission control: each lease's CONNECTION LIMIT (so the sum over live leases can be kept
-- within a share of PostgreSQL's max_connections) and a per-identity index (live leases per
-- identity are counted on every issuance when that limit is set).
ALTER TABLE leases ADD COLUMN connection_limit INTEGER NOT NULL DEFAULT 0;
CREATE INDEX leases_by_identity ON leases (identity, state);
