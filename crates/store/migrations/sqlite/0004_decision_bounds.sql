-- The decision log is bounded (issue 12): each row is a summary of at most
-- 64 KiB and the log is pruned by count, age and total size. `size` is what
-- retention by size counts (the texts plus 64 bytes); the (id, size) index
-- lets it sum sizes without reading the rows, the `at` index prunes by age.
ALTER TABLE decisions ADD COLUMN size BIGINT NOT NULL DEFAULT 0;

-- Rows written before the bound: what is over it is replaced by a note, as
-- the store does for new rows (the same limits, in bytes).
UPDATE decisions
SET detail = '{"truncated":"detail recorded before decisions were bounded was over 16384 bytes and was not kept"}'
WHERE length(CAST(detail AS BLOB)) > 16384;
UPDATE decisions
SET deny = '["messages recorded before decisions were bounded were over 16384 bytes and were not kept"]'
WHERE length(CAST(deny AS BLOB)) > 16384;
UPDATE decisions
SET warn = '["messages recorded before decisions were bounded were over 16384 bytes and were not kept"]'
WHERE length(CAST(warn AS BLOB)) > 16384;
UPDATE decisions
SET subject = substr(subject, 1, 150) || '…(cut)'
WHERE length(CAST(subject AS BLOB)) > 1000;
UPDATE decisions
SET repository = substr(repository, 1, 80) || '…(cut)'
WHERE length(CAST(repository AS BLOB)) > 500;
UPDATE decisions
SET size = 64 + length(CAST(point AS BLOB)) + COALESCE(length(CAST(repository AS BLOB)), 0)
    + length(CAST(subject AS BLOB)) + length(CAST(deny AS BLOB))
    + length(CAST(warn AS BLOB)) + length(CAST(detail AS BLOB));

CREATE INDEX decisions_size ON decisions (id, size);
CREATE INDEX decisions_at ON decisions (at);
