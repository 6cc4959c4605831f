-- The latest decisions about one subject (`repo@sha256:...`, what a web
-- page shows beside a digest) are read with `subject = $1 ORDER BY id
-- DESC`: without this index every such read would scan the whole log
-- (up to its retention, 100,000 rows by default) for a subject that has
-- no decision. Subjects are at most about 1 KiB (the log's bound).
CREATE INDEX decisions_subject ON decisions (subject, id);
