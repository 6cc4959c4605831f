-- Pavilion metadata, PostgreSQL flavour. Names and tags use the C collation
-- so that listings are ordered byte-wise, as on SQLite. Timestamps are Unix milliseconds.
CREATE TABLE repositories (
    name TEXT COLLATE "C" PRIMARY KEY,
    created_at BIGINT NOT NULL
);

-- Blobs known to the blob store, whatever repository links them.
CREATE TABLE blobs (
    digest TEXT COLLATE "C" PRIMARY KEY,
    size BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Which repositories may serve which blobs.
CREATE TABLE repo_blobs (
    repo TEXT NOT NULL,
    digest TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (repo, digest)
);
CREATE INDEX repo_blobs_digest ON repo_blobs (digest);

-- Manifests; their bytes live in the blob store under their digest.
CREATE TABLE manifests (
    repo TEXT NOT NULL,
    digest TEXT COLLATE "C" NOT NULL,
    media_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    artifact_type TEXT,
    subject TEXT,
    annotations TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (repo, digest)
);
CREATE INDEX manifests_subject ON manifests (repo, subject);

CREATE TABLE tags (
    repo TEXT NOT NULL,
    tag TEXT COLLATE "C" NOT NULL,
    digest TEXT COLLATE "C" NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (repo, tag)
);
CREATE INDEX tags_digest ON tags (repo, digest);

-- Upload sessions; their bytes live in the blob store's upload area.
CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    repo TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
