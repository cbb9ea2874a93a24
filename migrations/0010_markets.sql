-- Followed markets live here, managed at runtime through the API and the CLI; cdk.json's
-- `candlekeep:markets` is only the seed list, applied when migrations run. A removed market keeps its
-- row (removed_at) and its candles, so re-applying the seed never brings back what a user removed.
CREATE TABLE markets (
  exchange   text        NOT NULL,
  symbol     text        NOT NULL,
  -- First candle to backfill from; null: only the newest page is fetched when the series starts.
  start_time timestamptz,
  paused     boolean     NOT NULL DEFAULT false,
  source     text        NOT NULL CHECK (source IN ('seed', 'api')),
  added_at   timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  removed_at timestamptz,
  PRIMARY KEY (exchange, symbol)
);

-- The followed intervals of a market, one row per series. `pulled_at` is when a pull last finished
-- the series and `last_error` what the last failed one said, so the markets list shows each
-- series' state.
CREATE TABLE market_series (
  series_id  integer     PRIMARY KEY REFERENCES series (id),
  exchange   text        NOT NULL,
  symbol     text        NOT NULL,
  pulled_at  timestamptz,
  last_error text,
  errored_at timestamptz,
  FOREIGN KEY (exchange, symbol) REFERENCES markets (exchange, symbol) ON DELETE CASCADE
);
CREATE INDEX market_series_market ON market_series (exchange, symbol);
