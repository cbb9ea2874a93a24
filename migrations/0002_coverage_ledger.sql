-- The coverage ledger: backfill requests split into chunks that workers claim with
-- FOR UPDATE SKIP LOCKED, so a timeout, crash or redeploy resumes without refetching finished chunks.

CREATE TABLE backfills (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  series_id       integer     NOT NULL REFERENCES series (id),
  range_start     timestamptz NOT NULL,
  range_end       timestamptz NOT NULL,
  status          text        NOT NULL DEFAULT 'planned'
                  CHECK (status IN ('planned', 'running', 'done', 'failed', 'unsupported', 'cancelled')),
  status_message  text,
  requested_by    text,
  requested_at    timestamptz NOT NULL DEFAULT now(),
  finished_at     timestamptz,
  CHECK (range_end > range_start)
);
CREATE INDEX backfills_series ON backfills (series_id, requested_at DESC);

CREATE TABLE backfill_chunks (
  backfill_id  bigint      NOT NULL REFERENCES backfills (id) ON DELETE CASCADE,
  chunk_no     integer     NOT NULL,
  series_id    integer     NOT NULL,
  range_start  timestamptz NOT NULL,
  range_end    timestamptz NOT NULL,
  status       text        NOT NULL DEFAULT 'pending'
               CHECK (status IN ('pending', 'claimed', 'done', 'failed')),
  attempts     integer     NOT NULL DEFAULT 0,
  claimed_by   text,
  lease_until  timestamptz,
  finished_at  timestamptz,
  candles      integer,
  last_error   text,
  PRIMARY KEY (backfill_id, chunk_no),
  CHECK (range_end > range_start)
);
-- Workers look for claimable chunks: pending ones, or claimed ones whose lease ran out.
CREATE INDEX backfill_chunks_claimable ON backfill_chunks (backfill_id, chunk_no) WHERE status IN ('pending', 'claimed');

-- What the exchange was asked and what it answered, per series and range: `candles = 0` on a
-- fetched range is the exchange confirming it empty, which tells a real gap from a quiet market.
CREATE TABLE coverage (
  series_id   integer     NOT NULL,
  range_start timestamptz NOT NULL,
  range_end   timestamptz NOT NULL,
  candles     integer     NOT NULL,
  fetched_at  timestamptz NOT NULL DEFAULT now(),
  CHECK (range_end > range_start)
);
CREATE INDEX coverage_series_range ON coverage (series_id, range_start);
