-- Backtest records: immutable runs with their parameters, metrics, tags and the fingerprint of the
-- candle data they used. Equity curves and trades live in a side table so listing and comparing
-- runs never reads them.

CREATE TABLE backtests (
  id               uuid        PRIMARY KEY,
  -- Millisecond precision, so the value round-trips through JSON and keyset cursors exactly.
  created_at       timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
  -- A client's Idempotency-Key and the hash of the body it came with: a retried POST finds its run.
  idempotency_key  text        UNIQUE,
  request_hash     text        NOT NULL,
  strategy         text        NOT NULL,
  strategy_version text        NOT NULL,
  parameters       jsonb       NOT NULL,
  instruments      jsonb       NOT NULL,
  range_start      timestamptz NOT NULL,
  range_end        timestamptz NOT NULL,
  metrics          jsonb       NOT NULL,
  tags             text[]      NOT NULL DEFAULT '{}',
  notes            text,
  fingerprint      jsonb       NOT NULL,
  equity_points    integer     NOT NULL DEFAULT 0,
  trade_rows       integer     NOT NULL DEFAULT 0,
  CHECK (range_end > range_start),
  CHECK (jsonb_typeof(parameters) = 'object' AND jsonb_typeof(metrics) = 'object')
);

CREATE TABLE backtest_series (
  backtest_id  uuid  PRIMARY KEY REFERENCES backtests (id) ON DELETE CASCADE,
  equity_curve jsonb,
  trades       jsonb
);

-- Newest first is the default listing; the id breaks ties so keyset pages are exact.
CREATE INDEX backtests_created ON backtests (created_at DESC, id DESC);
CREATE INDEX backtests_strategy ON backtests (strategy, created_at DESC, id DESC);
CREATE INDEX backtests_tags ON backtests USING gin (tags);
-- Parameter equality filters (param.fast=10) become containment: parameters @> '{"fast":10}'.
CREATE INDEX backtests_parameters ON backtests USING gin (parameters jsonb_path_ops);

-- Sorting and range filters on the metrics every engine reports use these; the API writes the
-- same expression, so the planner can match them.
DO $$
DECLARE m text;
BEGIN
  FOREACH m IN ARRAY ARRAY['totalReturn','cagr','sharpe','sortino','calmar','maxDrawdown','volatility','winRate','profitFactor','tradeCount','exposure'] LOOP
    EXECUTE format('CREATE INDEX %I ON backtests (((metrics->>%L)::float8))', 'backtests_metric_' || lower(m), m);
  END LOOP;
END
$$;

-- Runs are immutable: a stored record is evidence, so it can be deleted but never edited.
CREATE FUNCTION refuse_backtest_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'backtest runs are immutable' USING ERRCODE = 'object_not_in_prerequisite_state';
END
$$;
CREATE TRIGGER backtests_immutable BEFORE UPDATE ON backtests
  FOR EACH ROW EXECUTE FUNCTION refuse_backtest_update();
CREATE TRIGGER backtest_series_immutable BEFORE UPDATE ON backtest_series
  FOR EACH ROW EXECUTE FUNCTION refuse_backtest_update();
