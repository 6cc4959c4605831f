-- Policy decisions (push, pull, admission), newest last. Messages and
-- details are JSON text; allowed is 0 or 1 so both engines read it alike.
CREATE TABLE decisions (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    point TEXT NOT NULL,
    repository TEXT,
    subject TEXT NOT NULL,
    allowed BIGINT NOT NULL,
    deny TEXT NOT NULL,
    warn TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX decisions_point ON decisions (point, id);
CREATE INDEX decisions_repository ON decisions (repository, id);
