-- Candles: one row per (series, open time), exact decimals, UTC timestamps.

-- A series is (exchange, symbol, interval); candles refer to it by a small integer so the text is
-- not repeated in every row. The writer resolves and caches ids; there is deliberately no foreign
-- key from candles (a per-row RI check would cost more than the whole insert).
CREATE TABLE series (
  id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  exchange   text NOT NULL,
  symbol     text NOT NULL,
  interval   text NOT NULL CHECK (interval IN ('1m','3m','5m','15m','30m','1h','2h','4h','6h','12h','1d','1w')),
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (exchange, symbol, interval)
);

-- Fixed-width columns first so the row has no alignment padding. `numeric` keeps the exchange's
-- decimal text exactly, including trailing zeros. `fetched_at` orders versions of a still-open
-- candle so a late, older version never replaces a newer one.
CREATE TABLE candles (
  series_id    integer     NOT NULL,
  closed       boolean     NOT NULL,
  open_time    timestamptz NOT NULL,
  fetched_at   timestamptz NOT NULL,
  trades       bigint,
  open         numeric     NOT NULL,
  high         numeric     NOT NULL,
  low          numeric     NOT NULL,
  close        numeric     NOT NULL,
  volume       numeric     NOT NULL,
  quote_volume numeric,
  PRIMARY KEY (series_id, open_time)
) PARTITION BY RANGE (open_time);

-- One partition per year for every year the message contract accepts (2000-01-01 to 2100-01-01),
-- so no valid row can ever fail for want of a partition. Each partition's primary key index makes a
-- (series, time range) read an index range scan within the pruned partitions.
DO $$
BEGIN
  FOR y IN 2000..2099 LOOP
    EXECUTE format(
      'CREATE TABLE candles_y%s PARTITION OF candles FOR VALUES FROM (%L) TO (%L)',
      y, make_timestamptz(y, 1, 1, 0, 0, 0, 'UTC'), make_timestamptz(y + 1, 1, 1, 0, 0, 0, 'UTC'));
  END LOOP;
END
$$;

-- A closed candle whose values the exchange later changed: the version it replaced is kept here.
CREATE TABLE candle_restatements (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  series_id        integer     NOT NULL,
  open_time        timestamptz NOT NULL,
  restated_at      timestamptz NOT NULL DEFAULT now(),
  old_fetched_at   timestamptz NOT NULL,
  new_fetched_at   timestamptz NOT NULL,
  old_trades       bigint,
  old_open         numeric NOT NULL,
  old_high         numeric NOT NULL,
  old_low          numeric NOT NULL,
  old_close        numeric NOT NULL,
  old_volume       numeric NOT NULL,
  old_quote_volume numeric
);
CREATE INDEX candle_restatements_series_time ON candle_restatements (series_id, open_time);

-- Fires only on real updates (the writer filters identical rewrites and open-over-closed before
-- they reach the table), so inserts pay nothing for it.
CREATE FUNCTION record_candle_restatement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.closed AND NEW.closed THEN
    INSERT INTO candle_restatements (series_id, open_time, old_fetched_at, new_fetched_at, old_trades,
      old_open, old_high, old_low, old_close, old_volume, old_quote_volume)
    VALUES (OLD.series_id, OLD.open_time, OLD.fetched_at, NEW.fetched_at, OLD.trades,
      OLD.open, OLD.high, OLD.low, OLD.close, OLD.volume, OLD.quote_volume);
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER candles_restatement AFTER UPDATE ON candles
  FOR EACH ROW EXECUTE FUNCTION record_candle_restatement();
