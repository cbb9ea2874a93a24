-- Partitions of `candles` are created as data needs them, not 100 up front.
--
-- 0001 created one yearly partition for every year 2000-2099. Every statement whose time bounds the
-- planner cannot see (a LATERAL per bucket, ORDER BY open_time DESC LIMIT 1) then plans and locks
-- all 100 of them; on a stock server that costing also triggers JIT compilation of plans that run in
-- milliseconds. Now a yearly partition exists only for years that hold candles, and a DEFAULT
-- partition catches any row whose year has none yet, so no row ever fails for want of a partition.
--
-- The writer adds the year partitions a batch needs before it writes (candles_add_year_partition,
-- below); the DEFAULT partition only holds rows if that failed (a lock wait timed out) or a writer
-- wrote without it, and the same function moves such rows into their year's partition the next time
-- that year is added (candles_settle_default does it for every year found there).

-- A year's partition, named candles_y<year> as 0001 named them. Returns true when it created one.
-- Safe to call from concurrent writers: SHARE UPDATE EXCLUSIVE on the parent serialises callers (it
-- does not block readers or writers of candles), the second re-checks and finds the partition. Rows
-- of that year waiting in the DEFAULT partition move into the new one in the same transaction.
-- Must not be called inside a transaction that has written to candles (it would wait on itself for
-- nothing, but a second such transaction could deadlock with it): the writer calls it on its own.
CREATE FUNCTION candles_add_year_partition(y integer) RETURNS boolean
LANGUAGE plpgsql
SET lock_timeout = '5s'
AS $$
DECLARE
  part text := format('candles_y%s', y);
  lo timestamptz := make_timestamptz(y, 1, 1, 0, 0, 0, 'UTC');
  hi timestamptz := make_timestamptz(y + 1, 1, 1, 0, 0, 0, 'UTC');
BEGIN
  IF y < 1970 OR y > 2199 THEN
    RAISE EXCEPTION 'candles_add_year_partition: year % is outside 1970-2199', y USING ERRCODE = '22023';
  END IF;
  IF to_regclass(part) IS NOT NULL THEN
    RETURN false;
  END IF;
  -- Parent before default, the order an insert takes them in.
  LOCK TABLE ONLY candles IN SHARE UPDATE EXCLUSIVE MODE;
  LOCK TABLE candles_default IN ACCESS EXCLUSIVE MODE;
  IF to_regclass(part) IS NOT NULL THEN
    RETURN false;
  END IF;
  -- Built beside the table and attached: attaching needs only SHARE UPDATE EXCLUSIVE on candles,
  -- where CREATE TABLE ... PARTITION OF would block every reader while it waits for its lock.
  EXECUTE format('CREATE TABLE %I (LIKE candles INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
  EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (open_time >= %L AND open_time < %L)', part, part || '_bounds', lo, hi);
  EXECUTE format(
    'WITH moved AS (DELETE FROM candles_default WHERE open_time >= %L AND open_time < %L RETURNING *) INSERT INTO %I SELECT * FROM moved',
    lo, hi, part);
  EXECUTE format('ALTER TABLE candles ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
  -- The check only spared ATTACH its validating scan; the partition bound says the same.
  EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', part, part || '_bounds');
  RETURN true;
END
$$;

-- Moves every row of the DEFAULT partition into its year's partition, creating those. Returns the
-- years it created. Cheap when the default partition is empty (the normal state).
CREATE FUNCTION candles_settle_default() RETURNS SETOF integer
LANGUAGE plpgsql
AS $$
DECLARE
  y integer;
BEGIN
  FOR y IN SELECT DISTINCT extract(year FROM open_time AT TIME ZONE 'UTC')::int FROM candles_default ORDER BY 1 LOOP
    IF candles_add_year_partition(y) THEN
      RETURN NEXT y;
    END IF;
  END LOOP;
END
$$;

CREATE TABLE candles_default PARTITION OF candles DEFAULT;

-- Existing databases: the yearly partitions that hold no rows go; populated ones stay as they are.
DO $$
DECLARE
  p record;
  has_rows boolean;
BEGIN
  FOR p IN
    SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'candles'::regclass AND c.relname ~ '^candles_y\d{4}$'
  LOOP
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I)', p.relname) INTO has_rows;
    IF NOT has_rows THEN
      EXECUTE format('DROP TABLE %I', p.relname);
    END IF;
  END LOOP;
END
$$;
