-- A per-series summary kept by the writes themselves, so the markets list reads one small row per
-- series instead of scanning every candle: its cost stays the same at ten million or a billion candles.
--
-- series_stats holds the count, first and last open time, and the number and total size of the gaps
-- between stored candles; candle_gaps holds each gap, so the largest is one index probe. Statement
-- triggers on candles keep both: for each series a statement touched, the gaps between the stored
-- candle before its first changed row and the one after its last are recomputed (a read of the
-- statement's own span), and the counters move by the difference. The series' summary row is
-- locked first, in series order, so concurrent writers to one series take turns and each sees the
-- other's committed rows.
CREATE TABLE series_stats (
  series_id  integer     PRIMARY KEY REFERENCES series (id),
  candles    bigint      NOT NULL DEFAULT 0,
  first_open timestamptz,
  last_open  timestamptz,
  gap_count  bigint      NOT NULL DEFAULT 0,
  missing    bigint      NOT NULL DEFAULT 0
);

-- A run of missing candles between two stored ones: after `gap_after`, before `gap_before`.
CREATE TABLE candle_gaps (
  series_id  integer     NOT NULL,
  gap_after  timestamptz NOT NULL,
  gap_before timestamptz NOT NULL,
  missing    bigint      NOT NULL,
  PRIMARY KEY (series_id, gap_after)
);
CREATE INDEX candle_gaps_largest ON candle_gaps (series_id, missing DESC);

CREATE FUNCTION series_interval_ms(iv text) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
  SELECT left(iv, -1)::bigint * CASE right(iv, 1) WHEN 'm' THEN 60000 WHEN 'h' THEN 3600000 WHEN 'd' THEN 86400000 ELSE 604800000 END
$$;

-- `changed` is the statement's inserted rows (after INSERT) or deleted rows (after DELETE).
CREATE FUNCTION series_stats_follow() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  r record;
  step bigint;
  lo_edge timestamptz;
  hi_edge timestamptz;
  gone_gaps bigint;
  gone_missing bigint;
  new_gaps bigint;
  new_missing bigint;
BEGIN
  FOR r IN SELECT series_id, min(open_time) AS lo, max(open_time) AS hi, count(*) AS n FROM changed GROUP BY series_id ORDER BY series_id LOOP
    INSERT INTO series_stats (series_id) VALUES (r.series_id) ON CONFLICT (series_id) DO NOTHING;
    PERFORM 1 FROM series_stats WHERE series_id = r.series_id FOR UPDATE;
    SELECT series_interval_ms(interval) INTO step FROM series WHERE id = r.series_id;
    lo_edge := (SELECT open_time FROM candles WHERE series_id = r.series_id AND open_time < r.lo ORDER BY open_time DESC LIMIT 1);
    hi_edge := (SELECT open_time FROM candles WHERE series_id = r.series_id AND open_time > r.hi ORDER BY open_time LIMIT 1);
    WITH gone AS (
      DELETE FROM candle_gaps
      WHERE series_id = r.series_id AND gap_after >= coalesce(lo_edge, '-infinity') AND gap_after < coalesce(hi_edge, 'infinity')
      RETURNING missing
    )
    SELECT count(*), coalesce(sum(missing), 0) INTO gone_gaps, gone_missing FROM gone;
    WITH c AS (
      SELECT open_time, lag(open_time) OVER (ORDER BY open_time) AS prev
      FROM candles
      WHERE series_id = r.series_id AND open_time >= coalesce(lo_edge, r.lo) AND open_time <= coalesce(hi_edge, r.hi)
    ), added AS (
      INSERT INTO candle_gaps (series_id, gap_after, gap_before, missing)
      SELECT r.series_id, prev, open_time, round(extract(epoch FROM open_time - prev) * 1000)::bigint / step - 1
      FROM c
      WHERE prev IS NOT NULL AND round(extract(epoch FROM open_time - prev) * 1000)::bigint > step
      RETURNING missing
    )
    SELECT count(*), coalesce(sum(missing), 0) INTO new_gaps, new_missing FROM added;
    IF TG_OP = 'INSERT' THEN
      UPDATE series_stats SET
        candles = candles + r.n,
        first_open = least(first_open, r.lo),
        last_open = greatest(last_open, r.hi),
        gap_count = gap_count - gone_gaps + new_gaps,
        missing = missing - gone_missing + new_missing
      WHERE series_id = r.series_id;
    ELSE
      UPDATE series_stats SET
        candles = candles - r.n,
        first_open = (SELECT open_time FROM candles WHERE series_id = r.series_id ORDER BY open_time LIMIT 1),
        last_open = (SELECT open_time FROM candles WHERE series_id = r.series_id ORDER BY open_time DESC LIMIT 1),
        gap_count = gap_count - gone_gaps + new_gaps,
        missing = missing - gone_missing + new_missing
      WHERE series_id = r.series_id;
    END IF;
  END LOOP;
  RETURN NULL;
END
$$;

CREATE TRIGGER candles_stats_insert AFTER INSERT ON candles REFERENCING NEW TABLE AS changed
  FOR EACH STATEMENT EXECUTE FUNCTION series_stats_follow();
CREATE TRIGGER candles_stats_delete AFTER DELETE ON candles REFERENCING OLD TABLE AS changed
  FOR EACH STATEMENT EXECUTE FUNCTION series_stats_follow();

-- What is stored already, once.
INSERT INTO candle_gaps (series_id, gap_after, gap_before, missing)
SELECT c.series_id, c.prev, c.open_time, round(extract(epoch FROM c.open_time - c.prev) * 1000)::bigint / series_interval_ms(s.interval) - 1
FROM (SELECT series_id, open_time, lag(open_time) OVER (PARTITION BY series_id ORDER BY open_time) AS prev FROM candles) c
JOIN series s ON s.id = c.series_id
WHERE c.prev IS NOT NULL AND round(extract(epoch FROM c.open_time - c.prev) * 1000)::bigint > series_interval_ms(s.interval);

INSERT INTO series_stats (series_id, candles, first_open, last_open, gap_count, missing)
SELECT s.id, coalesce(c.n, 0), c.first_open, c.last_open, coalesce(g.n, 0), coalesce(g.missing, 0)
FROM series s
LEFT JOIN (SELECT series_id, count(*) AS n, min(open_time) AS first_open, max(open_time) AS last_open FROM candles GROUP BY series_id) c
  ON c.series_id = s.id
LEFT JOIN (SELECT series_id, count(*) AS n, sum(missing) AS missing FROM candle_gaps GROUP BY series_id) g ON g.series_id = s.id;
