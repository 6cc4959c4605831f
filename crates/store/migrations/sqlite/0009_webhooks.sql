-- Webhook delivery state (issue 19, item 3). One cursor row per webhook
-- named in the configuration: the last sequence number handled (delivered
-- or dead-lettered), and a lease so that one replica at a time delivers
-- it (the others take over when `lease_until`, Unix ms, has passed). A
-- replica changes `delivered` only while it holds the lease, so a replica
-- whose lease was taken cannot move a cursor back or forward.
CREATE TABLE webhook_cursors (
    name TEXT PRIMARY KEY,
    delivered BIGINT NOT NULL,
    holder TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    last_error_at BIGINT,
    -- Dead letters dropped to keep each webhook's at the bound.
    dead_dropped BIGINT NOT NULL DEFAULT 0
);

-- Events a webhook gave up on after its attempts. `queued` = 1: a replay
-- asked for it to be delivered again (before new events).
CREATE TABLE webhook_dead_letters (
    name TEXT NOT NULL,
    seq BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    error TEXT NOT NULL,
    at BIGINT NOT NULL,
    queued BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (name, seq)
);
