-- The decision log is bounded (issue 12): each row is a summary of at most
-- 64 KiB and the log is pruned by count, age and total size. `size` is what
-- retention by size counts (the texts plus 64 bytes); the (id, size) index
-- lets it sum sizes without reading the rows, the `at` index prunes by age.
ALTER TABLE decisions ADD COLUMN size BIGINT NOT NULL DEFAULT 0;

-- Rows written before the bound: what is over it is replaced by a note, as
-- the store does for new rows (the same limits, in bytes).
UPDATE decisions
SET detail = '{"truncated":"detail recorded before decisions were bounded was over 16384 bytes and was not kept"}'
WHERE octet_length(detail) > 16384;
UPDATE decisions
SET deny = '["messages recorded before decisions were bounded were over 16384 bytes and were not kept"]'
WHERE octet_length(deny) > 16384;
UPDATE decisions
SET warn = '["messages recorded before decisions were bounded were over 16384 bytes and were not kept"]'
WHERE octet_length(warn) > 16384;
UPDATE decisions
SET subject = left(subject, 150) || '…(cut)'
WHERE octet_length(subject) > 1000;
UPDATE decisions
SET repository = left(repository, 80) || '…(cut)'
WHERE octet_length(repository) > 500;
UPDATE decisions
SET size = 64 + octet_length(point) + COALESCE(octet_length(repository), 0)
    + octet_length(subject) + octet_length(deny) + octet_length(warn) + octet_length(detail);

CREATE INDEX decisions_size ON decisions (id, size);
CREATE INDEX decisions_at ON decisions (at);
