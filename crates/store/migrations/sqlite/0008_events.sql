-- The change feed's transactional outbox (issue 19): every change writes
-- its event in the same transaction as the change itself, so an event
-- exists exactly when its change committed. seq is the global sequence,
-- repo_seq the repository's own (NULL for events of no repository).
-- Sequences come from event_counters, not from an autoincrement: a row
-- lock on the global counter, held until commit, makes sequence order
-- equal commit order on PostgreSQL, and a rolled-back change takes its
-- number back with it, so the sequence has no gaps (docs/ARCHITECTURE.md,
-- "Change feed").
CREATE TABLE events (
    seq BIGINT PRIMARY KEY,
    id TEXT NOT NULL,
    repository TEXT,
    repo_seq BIGINT,
    type TEXT NOT NULL,
    subject TEXT,
    at BIGINT NOT NULL,
    actor TEXT,
    traceparent TEXT,
    data TEXT NOT NULL
);
-- Age pruning reads the oldest rows by time.
CREATE INDEX events_at ON events (at);

-- The last number handed out per scope: '' is the global sequence,
-- 'repo:<name>' a repository's.
CREATE TABLE event_counters (
    scope TEXT PRIMARY KEY,
    last BIGINT NOT NULL
);
INSERT INTO event_counters (scope, last) VALUES ('', 0);
