-- Retention per interval: how many days of candles a followed series keeps (null: forever).
--
-- A market has a default that every interval follows unless it sets its own; an interval's own
-- setting may be "forever" while the market's default is not (1m for 365 days, 1d forever), so the
-- series row says whether it has one (retention_own) apart from the value.
ALTER TABLE markets ADD COLUMN retention_days integer CHECK (retention_days BETWEEN 1 AND 36500);
ALTER TABLE market_series ADD COLUMN retention_days integer CHECK (retention_days BETWEEN 1 AND 36500);
ALTER TABLE market_series ADD COLUMN retention_own boolean NOT NULL DEFAULT false;

-- What the retention job deleted from a series: every candle before `expired_before` is gone on
-- purpose, from `first_expired` (the oldest candle it ever deleted) on. Kept by series, not by
-- market, so a series whose market is removed later still reads its expired range as expired.
-- Gaps before `expired_before` are "expired by retention", never missing data to backfill again.
CREATE TABLE series_expiry (
  series_id       integer     PRIMARY KEY REFERENCES series (id),
  first_expired   timestamptz NOT NULL,
  expired_before  timestamptz NOT NULL,
  expired_candles bigint      NOT NULL DEFAULT 0,
  updated_at      timestamptz NOT NULL DEFAULT now()
);
