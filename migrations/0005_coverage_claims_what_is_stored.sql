-- Coverage rows that claim more candles than are stored in their range.
--
-- Until now a range entered the ledger when its candles were handed to the queue, not when they
-- were stored, so a batch lost on the way (dead-lettered after a long database outage and never
-- redriven, purged, or gone with a local LocalStack) left a row whose range holds fewer candles than
-- it claims. Each bucket of that range without a candle reads as "the exchange confirmed it empty",
-- and neither `gaps --backfill` nor a new backfill request would fetch it again.
--
-- Which of those buckets the exchange really had empty cannot be told any more, so such a row is
-- replaced by the runs of consecutive stored candles inside it, each claiming exactly the candles
-- it holds. Every bucket of the old range without a candle then reads as missing: a backfill
-- fetches it again, which stores what was lost and records the truly empty buckets anew. This keeps
-- "a bucket in the ledger without a candle is one the exchange confirmed empty" true, at the cost
-- of refetching the quiet buckets of those rows once; the stored runs are not fetched again. A row
-- whose range holds no candle at all is simply deleted. Rows that hold what they claim (or more:
-- a later fetch may have added candles) are left alone.

CREATE TEMPORARY TABLE overclaimed ON COMMIT DROP AS
SELECT c.ctid AS row_id, c.series_id, c.range_start, c.range_end, c.fetched_at,
       CASE s.interval
         WHEN '1m' THEN interval '1 minute'   WHEN '3m' THEN interval '3 minutes'
         WHEN '5m' THEN interval '5 minutes'  WHEN '15m' THEN interval '15 minutes'
         WHEN '30m' THEN interval '30 minutes' WHEN '1h' THEN interval '1 hour'
         WHEN '2h' THEN interval '2 hours'    WHEN '4h' THEN interval '4 hours'
         WHEN '6h' THEN interval '6 hours'    WHEN '12h' THEN interval '12 hours'
         -- Hours, not days: day arithmetic on timestamptz follows the session's time zone.
         WHEN '1d' THEN interval '24 hours'   WHEN '1w' THEN interval '168 hours'
       END AS step
FROM coverage c
JOIN series s ON s.id = c.series_id
WHERE c.candles > (SELECT count(*) FROM candles k
                   WHERE k.series_id = c.series_id AND k.open_time >= c.range_start AND k.open_time < c.range_end);

DELETE FROM coverage c USING overclaimed o WHERE c.ctid = o.row_id;

-- Gaps and islands: within one old row, consecutive candles share open_time - n * step.
INSERT INTO coverage (series_id, range_start, range_end, candles, fetched_at)
SELECT o.series_id, min(k.open_time), least(max(k.open_time) + o.step, o.range_end), count(*), o.fetched_at
FROM overclaimed o
CROSS JOIN LATERAL (
  SELECT open_time, open_time - (row_number() OVER (ORDER BY open_time)) * o.step AS island
  FROM candles
  WHERE series_id = o.series_id AND open_time >= o.range_start AND open_time < o.range_end
) k
GROUP BY o.row_id, o.series_id, o.range_end, o.fetched_at, o.step, k.island;
