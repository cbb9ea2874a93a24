-- A settle no longer costs a round trip of its own: a process queues the settles of its answered
-- grants and sends them with its next grant on the same budget (budget_settle_grant), or, when no
-- grant follows soon, and before a function invocation returns, all at once (budget_settle_many).
-- A steady stream of requests then costs one round trip each instead of two. A settle that arrives
-- a little late only holds its weight in flight a little longer (in flight counts until a window
-- from now); it still counts until a window after the answer it reports.

-- Ends the flights of several grants, on any buckets: `p_weights[i]` leaves the in-flight slot
-- `p_flight_slots[i]` of bucket `p_keys[i]` and counts as answered in the slot its answer arrived in,
-- `p_answer_slots[i]`, as budget_settle (0016) does for one. A grant already expired from flight is
-- still counted from its answer. Rows are locked in key order, so concurrent calls cannot deadlock.
CREATE FUNCTION budget_settle_many(p_keys text[], p_weights integer[], p_flight_slots bigint[], p_answer_slots bigint[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  k text;
  s bigint[];
  w integer[];
  fs bigint[];
  fw integer[];
BEGIN
  FOR k IN SELECT DISTINCT t.key FROM unnest(p_keys) AS t(key) ORDER BY 1 LOOP
    SELECT r.slots, r.weights, r.flight_slots, r.flight_weights INTO s, w, fs, fw FROM rate_budgets r WHERE r.key = k FOR UPDATE;
    IF NOT FOUND THEN
      INSERT INTO rate_budgets (key) VALUES (k) ON CONFLICT DO NOTHING;
      SELECT r.slots, r.weights, r.flight_slots, r.flight_weights INTO s, w, fs, fw FROM rate_budgets r WHERE r.key = k FOR UPDATE;
    END IF;

    -- Flight slots are unique and ascending (budget_grant adds to the last one or appends a later one).
    SELECT coalesce(array_agg(f.slot ORDER BY f.slot), '{}'), coalesce(array_agg(f.weight ORDER BY f.slot), '{}')
      INTO fs, fw
      FROM (
        SELECT t.slot, t.weight - least(t.weight, coalesce((
                 SELECT sum(x.weight) FROM unnest(p_keys, p_weights, p_flight_slots) AS x(key, weight, slot)
                 WHERE x.key = k AND x.slot = t.slot), 0))::integer AS weight
          FROM unnest(fs, fw) AS t(slot, weight)
      ) f
     WHERE f.weight > 0;

    SELECT coalesce(array_agg(a.slot ORDER BY a.slot), '{}'), coalesce(array_agg(a.weight ORDER BY a.slot), '{}')
      INTO s, w
      FROM (
        SELECT u.slot, sum(u.weight)::integer AS weight
          FROM (
            SELECT t.slot, t.weight FROM unnest(s, w) AS t(slot, weight)
            UNION ALL
            SELECT x.slot, x.weight FROM unnest(p_keys, p_weights, p_answer_slots) AS x(key, weight, slot) WHERE x.key = k
          ) u
         GROUP BY u.slot
      ) a;

    UPDATE rate_budgets SET slots = s, weights = w, flight_slots = fs, flight_weights = fw, updated_at = now() WHERE key = k;
  END LOOP;
END
$$;

-- Settles the grants queued for bucket `p_key` (as budget_settle_many), then grants as budget_grant
-- (0016) does, in one round trip. The settles are applied even when the exchange is blocked.
CREATE FUNCTION budget_settle_grant(p_key text, p_exchange text, p_weight integer, p_now bigint, p_limit integer,
                                    p_window_ms bigint, p_slot_ms bigint, p_in_flight_max_ms bigint,
                                    p_weights integer[], p_flight_slots bigint[], p_answer_slots bigint[])
RETURNS TABLE (wait_ms bigint, used integer, block_until bigint, block_kind text, slot bigint)
LANGUAGE plpgsql AS $$
DECLARE
  n integer := coalesce(array_length(p_weights, 1), 0);
BEGIN
  IF n > 0 THEN
    PERFORM budget_settle_many(array_fill(p_key, ARRAY[n]), p_weights, p_flight_slots, p_answer_slots);
  END IF;
  RETURN QUERY SELECT * FROM budget_grant(p_key, p_exchange, p_weight, p_now, p_limit, p_window_ms, p_slot_ms, p_in_flight_max_ms);
END
$$;

-- budget_grant and budget_settle (0016) stay for functions still running the previous release while
-- a deploy rolls out.
