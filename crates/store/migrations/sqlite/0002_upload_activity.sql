-- Last time an upload session received data: abandoned sessions expire by it.
ALTER TABLE uploads ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
UPDATE uploads SET updated_at = created_at;
