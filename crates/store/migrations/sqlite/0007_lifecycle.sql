-- Storage lifecycle: garbage collection, retention and quotas (issue 17).
-- The argument for why a sweep never races a push into a missing blob is
-- in docs/ARCHITECTURE.md ("Garbage collection"). In short: every row a
-- reference needs (a blob's row, a repository's link, a manifest) carries
-- claimed_at, bumped in the same transaction that makes the reference; the
-- collector deletes a row only in a statement that also requires
-- claimed_at to be older than its grace period, so whichever of the two
-- writes the row first wins and the other sees it.

-- Blobs: when last claimed; doomed_at is set by the collector before it
-- deletes the bytes (a doomed blob cannot be claimed: a writer is told to
-- retry); manifest = 1 for a row made for a manifest's own bytes.
ALTER TABLE blobs ADD COLUMN claimed_at BIGINT NOT NULL DEFAULT 0;
UPDATE blobs SET claimed_at = created_at;
ALTER TABLE blobs ADD COLUMN doomed_at BIGINT;
ALTER TABLE blobs ADD COLUMN manifest INTEGER NOT NULL DEFAULT 0;

ALTER TABLE repo_blobs ADD COLUMN claimed_at BIGINT NOT NULL DEFAULT 0;
UPDATE repo_blobs SET claimed_at = created_at;

-- Manifests: when last pushed, referenced by an index or untagged;
-- refs_known = 1 once what it references is in manifest_refs (manifests
-- pushed before this migration are indexed by the collector, which keeps
-- every link of a repository holding one it could not index).
ALTER TABLE manifests ADD COLUMN claimed_at BIGINT NOT NULL DEFAULT 0;
UPDATE manifests SET claimed_at = created_at;
ALTER TABLE manifests ADD COLUMN refs_known INTEGER NOT NULL DEFAULT 0;
CREATE INDEX manifests_digest ON manifests (digest);
-- The collector asks, for every row it deletes, whether the repository
-- holds a manifest not indexed: answered from this (usually empty) index.
CREATE INDEX manifests_unindexed ON manifests (repo) WHERE refs_known = 0;

-- What each manifest references: kind 0 a blob (config, layer), kind 1 a
-- manifest (an index's child). Deleted with the manifest.
CREATE TABLE manifest_refs (
    repo TEXT NOT NULL,
    manifest TEXT NOT NULL,
    digest TEXT NOT NULL,
    kind INTEGER NOT NULL,
    PRIMARY KEY (repo, manifest, digest)
);
CREATE INDEX manifest_refs_target ON manifest_refs (repo, digest);

-- Manifest bytes get a blob row too, so that they are claimed and
-- collected like any blob.
INSERT OR IGNORE INTO blobs (digest, size, created_at, claimed_at, manifest)
    SELECT digest, MAX(size), MIN(created_at), MAX(created_at), 1 FROM manifests GROUP BY digest;

-- Runs of the collector and what each did, newest kept (the lock that
-- keeps runs from overlapping is outside the tables: an advisory lock on
-- PostgreSQL, a file lock beside the SQLite file; both die with the process).
CREATE TABLE gc_runs (
    id TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    report TEXT
);
