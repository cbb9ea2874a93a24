-- The optional fields some exchanges send with a candle: taker-buy base and quote volume
-- (Binance) and the volume-weighted average price (Kraken). Quote volume already has its column.
--
-- A side table keyed like `candles`, holding a row only for candles that carry at least one of
-- them. Nullable columns on `candles` itself would give every row that has none of them (and whose
-- other columns are all set) a null bitmap, moving its data from byte 24 to byte 32 of the tuple:
-- 8 more bytes per candle on every exchange, for fields most never send.
CREATE TABLE candle_extras (
  series_id              integer     NOT NULL,
  open_time              timestamptz NOT NULL,
  taker_buy_volume       numeric,
  taker_buy_quote_volume numeric,
  vwap                   numeric,
  PRIMARY KEY (series_id, open_time)
);

-- A restatement keeps the optional fields of the version it replaced too.
ALTER TABLE candle_restatements
  ADD COLUMN old_taker_buy_volume numeric,
  ADD COLUMN old_taker_buy_quote_volume numeric,
  ADD COLUMN old_vwap numeric;

-- The writer updates a candle's row before its extras (a separate statement), so the extras read
-- here are still the replaced version's. A restatement that changes only an optional field is
-- written as an update of the candle's fetched_at, so it is recorded like any other.
CREATE OR REPLACE FUNCTION record_candle_restatement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.closed AND NEW.closed THEN
    INSERT INTO candle_restatements (series_id, open_time, old_fetched_at, new_fetched_at, old_trades,
      old_open, old_high, old_low, old_close, old_volume, old_quote_volume,
      old_taker_buy_volume, old_taker_buy_quote_volume, old_vwap)
    SELECT OLD.series_id, OLD.open_time, OLD.fetched_at, NEW.fetched_at, OLD.trades,
      OLD.open, OLD.high, OLD.low, OLD.close, OLD.volume, OLD.quote_volume,
      x.taker_buy_volume, x.taker_buy_quote_volume, x.vwap
    FROM (SELECT 1) AS one
    LEFT JOIN candle_extras x ON x.series_id = OLD.series_id AND x.open_time = OLD.open_time;
  END IF;
  RETURN NULL;
END
$$;
