-- What waits in the candles dead-letter queue, per series and range, so gaps and the markets list can
-- say "a redrive fills this" without reading the queue. One row per dead-lettered SQS message, filled
-- by the dead-letter scan (which peeks at the queue without consuming it) and by the writer when it
-- rejects a message itself; a message no longer in the queue is removed by the next complete scan.
CREATE TABLE dead_letters (
  message_id  text        PRIMARY KEY,
  -- Null when the body names no valid series (not JSON, unknown exchange, ...): counted, never placed.
  series_id   integer     REFERENCES series (id),
  range_start timestamptz,
  range_end   timestamptz,
  candles     integer     NOT NULL DEFAULT 0,
  reason      text        NOT NULL,
  first_seen  timestamptz NOT NULL DEFAULT now(),
  last_seen   timestamptz NOT NULL DEFAULT now(),
  CHECK (range_end > range_start),
  CHECK ((range_start IS NULL) = (range_end IS NULL))
);
CREATE INDEX dead_letters_series_range ON dead_letters (series_id, range_start) WHERE series_id IS NOT NULL;
