-- Rollups: closed buckets of coarser intervals (1h, 4h, 1d, 1w) built from a stored series, so a
-- resampled read of a year of days costs ~365 rows instead of every source candle.
--
-- A row is either a materialised bucket (stale = false; source_candles = 0 for a bucket the source
-- has no candle in) or a mark left by the writer (stale = true) saying the source changed there.
-- The writer marks a bucket in the same statement that writes its candles, bumping `gen`; a reader
-- stores what it computed only if `gen` is still the one it saw before reading the source
-- (INSERT ... ON CONFLICT checks the newest committed row), so a bucket computed from a snapshot
-- older than a concurrent write is never kept.
CREATE TABLE candle_rollups (
  series_id      integer     NOT NULL,
  interval       text        NOT NULL CHECK (interval IN ('1h','4h','1d','1w')),
  open_time      timestamptz NOT NULL,
  gen            bigint      NOT NULL,
  stale          boolean     NOT NULL,
  closed         boolean,
  source_candles integer,
  open           numeric,
  high           numeric,
  low            numeric,
  close          numeric,
  volume         numeric,
  quote_volume   numeric,
  trades         numeric,
  PRIMARY KEY (series_id, interval, open_time)
);
