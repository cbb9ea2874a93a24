-- Exports asked for through POST /v1/exports: one row per request, written by the export worker
-- as it goes. `result_key` is the object in the exports bucket once the file is complete; the
-- bucket's lifecycle rule expires it, and `expires_at` says when, so a status read after that
-- answers "expired" instead of a URL to nothing.
CREATE TABLE exports (
  id                   uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  request              jsonb       NOT NULL,
  format               text        NOT NULL CHECK (format IN ('parquet', 'csv.gz')),
  status               text        NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
  requested_by         text,
  requested_at         timestamptz NOT NULL DEFAULT now(),
  started_at           timestamptz,
  finished_at          timestamptz,
  -- Each start of the worker on this export (a redelivered message is a second attempt).
  attempts             integer     NOT NULL DEFAULT 0,
  -- Progress: stored candles read of the planned total, rows and bytes written so far.
  source_candles       bigint      NOT NULL DEFAULT 0,
  total_source_candles bigint,
  rows_written         bigint      NOT NULL DEFAULT 0,
  bytes_written        bigint      NOT NULL DEFAULT 0,
  error                text,
  result_key           text,
  expires_at           timestamptz,
  CHECK ((status = 'done') = (result_key IS NOT NULL)),
  CHECK ((status = 'failed') = (error IS NOT NULL))
);
CREATE INDEX exports_requested_at ON exports (requested_at DESC);
