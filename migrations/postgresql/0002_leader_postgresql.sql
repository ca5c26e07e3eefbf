-- Leader election for several Mayfly nodes on one PostgreSQL store: one lock row, taken and
-- renewed in transactions on PostgreSQL's clock (never a node's). `term` grows on every
-- takeover and is the fencing token: a write of a node in HA mode checks, in its own
-- transaction, that the row still names that node and term and has not expired, so a
-- leader that was paused or cut off cannot write once another node holds the lock.
CREATE TABLE leader (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    node         TEXT        NOT NULL,
    address      TEXT        NOT NULL DEFAULT '',  -- cluster_addr: where standbys forward to
    api_address  TEXT        NOT NULL DEFAULT '',  -- api_addr: what sys/leader tells clients
    term         BIGINT      NOT NULL,
    acquired_at  TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);

-- The nodes of the cluster as each last reported itself (`sys/ha-status`, `mayfly operator
-- members`): written by every node, leader or standby, outside the fence (it is no
-- leader-only state), and read on PostgreSQL's clock.
CREATE TABLE members (
    node         TEXT        PRIMARY KEY,
    holder       TEXT        NOT NULL,
    address      TEXT        NOT NULL DEFAULT '',
    api_address  TEXT        NOT NULL DEFAULT '',
    role         TEXT        NOT NULL,
    term         BIGINT      NOT NULL DEFAULT 0,
    version      TEXT        NOT NULL DEFAULT '',
    started_at   TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL
);
