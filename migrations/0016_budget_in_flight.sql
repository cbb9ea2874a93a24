-- The shared budget holds a grant while its request is in flight. A grant used to count from the
-- moment it was asked for; a request that left late (its process starved of CPU, its connection slow
-- to open) then reached the exchange less than a window before the next one, and a budget as tight
-- as Kraken's (one request per 1,112 ms against the exchange's second) got a 429. Now a grant is in
-- flight until its caller settles it with the time its answer arrived, and counts until a window
-- after that: the exchange counted the request before it answered, so however late the request left,
-- the next one cannot reach the exchange within a window of it.

-- Grants not yet answered, as slot start times (epoch ms, ascending) and weights, beside the answered
-- ones in `slots` / `weights`.
ALTER TABLE rate_budgets
  ADD COLUMN flight_slots   bigint[]  NOT NULL DEFAULT '{}',
  ADD COLUMN flight_weights integer[] NOT NULL DEFAULT '{}';

-- Grants `p_weight` at `p_now` as in flight, when the answered weight still inside the window plus
-- the weight in flight leave room under `p_limit`; otherwise says how long until enough would leave
-- (weight in flight leaves a window after its answer at the earliest, so a window from now). Returns
-- the slot the grant is recorded in, for budget_settle. A grant never settled (its caller died
-- mid-request) stops counting `p_in_flight_max_ms` plus a window after its slot. A zero weight only
-- reads what the bucket holds. A block on the exchange refuses every grant until it ends.
CREATE FUNCTION budget_grant(p_key text, p_exchange text, p_weight integer, p_now bigint, p_limit integer,
                             p_window_ms bigint, p_slot_ms bigint, p_in_flight_max_ms bigint)
RETURNS TABLE (wait_ms bigint, used integer, block_until bigint, block_kind text, slot bigint)
LANGUAGE plpgsql AS $$
DECLARE
  s bigint[];
  w integer[];
  fs bigint[];
  fw integer[];
  keep_s bigint[] := '{}';
  keep_w integer[] := '{}';
  keep_fs bigint[] := '{}';
  keep_fw integer[] := '{}';
  leaves bigint[] := '{}';
  leave_w integer[] := '{}';
  total integer := 0;
  cur bigint := p_now - p_now % p_slot_ms;
  want integer := least(p_weight, p_limit);
  excess integer;
  n integer;
  blk record;
  lv record;
BEGIN
  SELECT b.until_ms, b.kind INTO blk FROM exchange_blocks b WHERE b.exchange = p_exchange AND b.until_ms > p_now;
  IF FOUND THEN
    RETURN QUERY SELECT blk.until_ms - p_now, NULL::integer, blk.until_ms, blk.kind, NULL::bigint;
    RETURN;
  END IF;

  SELECT r.slots, r.weights, r.flight_slots, r.flight_weights INTO s, w, fs, fw FROM rate_budgets r WHERE r.key = p_key FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO rate_budgets (key) VALUES (p_key) ON CONFLICT DO NOTHING;
    SELECT r.slots, r.weights, r.flight_slots, r.flight_weights INTO s, w, fs, fw FROM rate_budgets r WHERE r.key = p_key FOR UPDATE;
  END IF;

  -- Answered weight counts until a window after its slot ends, as in budget_take.
  FOR i IN 1 .. coalesce(array_length(s, 1), 0) LOOP
    IF s[i] + p_slot_ms + p_window_ms > p_now THEN
      keep_s := keep_s || s[i];
      keep_w := keep_w || w[i];
      total := total + w[i];
      leaves := leaves || (s[i] + p_slot_ms + p_window_ms);
      leave_w := leave_w || w[i];
    END IF;
  END LOOP;
  FOR i IN 1 .. coalesce(array_length(fs, 1), 0) LOOP
    IF fw[i] > 0 AND fs[i] + p_slot_ms + p_in_flight_max_ms + p_window_ms > p_now THEN
      keep_fs := keep_fs || fs[i];
      keep_fw := keep_fw || fw[i];
      total := total + fw[i];
      leaves := leaves || (p_now + p_window_ms);
      leave_w := leave_w || fw[i];
    END IF;
  END LOOP;

  IF want = 0 THEN
    RETURN QUERY SELECT 0::bigint, total, NULL::bigint, NULL::text, NULL::bigint;
    RETURN;
  END IF;

  IF total + want <= p_limit THEN
    n := coalesce(array_length(keep_fs, 1), 0);
    -- A slot at or after ours (a peer whose clock runs ahead) takes the weight; the caller settles it from there.
    IF n > 0 AND keep_fs[n] >= cur THEN
      keep_fw[n] := keep_fw[n] + want;
      cur := keep_fs[n];
    ELSE
      keep_fs := keep_fs || cur;
      keep_fw := keep_fw || want;
    END IF;
    UPDATE rate_budgets SET slots = keep_s, weights = keep_w, flight_slots = keep_fs, flight_weights = keep_fw, updated_at = now()
    WHERE key = p_key;
    RETURN QUERY SELECT 0::bigint, total + want, NULL::bigint, NULL::text, cur;
    RETURN;
  END IF;

  excess := total + want - p_limit;
  FOR lv IN SELECT t.at, t.weight FROM unnest(leaves, leave_w) AS t(at, weight) ORDER BY t.at LOOP
    excess := excess - lv.weight;
    IF excess <= 0 THEN
      RETURN QUERY SELECT greatest(1, lv.at - p_now), total, NULL::bigint, NULL::text, NULL::bigint;
      RETURN;
    END IF;
  END LOOP;
  RETURN QUERY SELECT p_window_ms, total, NULL::bigint, NULL::text, NULL::bigint;
END
$$;

-- Ends a grant's flight: `p_weight` leaves the in-flight slot `p_flight_slot` and is counted as
-- answered in the slot its answer arrived in, `p_answer_slot`, so it counts until a window after
-- the answer. A grant already expired from flight is still counted from its answer.
CREATE FUNCTION budget_settle(p_key text, p_weight integer, p_flight_slot bigint, p_answer_slot bigint)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  s bigint[];
  w integer[];
  fs bigint[];
  fw integer[];
  out_s bigint[] := '{}';
  out_w integer[] := '{}';
  out_fs bigint[] := '{}';
  out_fw integer[] := '{}';
  left_over integer := p_weight;
  placed boolean := false;
BEGIN
  SELECT r.slots, r.weights, r.flight_slots, r.flight_weights INTO s, w, fs, fw FROM rate_budgets r WHERE r.key = p_key FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO rate_budgets (key, slots, weights) VALUES (p_key, ARRAY[p_answer_slot], ARRAY[p_weight]) ON CONFLICT DO NOTHING;
    RETURN;
  END IF;
  FOR i IN 1 .. coalesce(array_length(fs, 1), 0) LOOP
    IF fs[i] = p_flight_slot AND left_over > 0 THEN
      fw[i] := fw[i] - least(fw[i], left_over);
      left_over := 0;
    END IF;
    IF fw[i] > 0 THEN
      out_fs := out_fs || fs[i];
      out_fw := out_fw || fw[i];
    END IF;
  END LOOP;
  FOR i IN 1 .. coalesce(array_length(s, 1), 0) LOOP
    IF NOT placed AND s[i] >= p_answer_slot THEN
      IF s[i] = p_answer_slot THEN
        w[i] := w[i] + p_weight;
      ELSE
        out_s := out_s || p_answer_slot;
        out_w := out_w || p_weight;
      END IF;
      placed := true;
    END IF;
    out_s := out_s || s[i];
    out_w := out_w || w[i];
  END LOOP;
  IF NOT placed THEN
    out_s := out_s || p_answer_slot;
    out_w := out_w || p_weight;
  END IF;
  UPDATE rate_budgets SET slots = out_s, weights = out_w, flight_slots = out_fs, flight_weights = out_fw, updated_at = now()
  WHERE key = p_key;
END
$$;

-- budget_take and budget_shift (0004) stay for functions still running the previous release while
-- a deploy rolls out; they see only answered weight. budget_shift with no source slot remains how
-- usage an exchange reports beyond what the budget knows is added.
