-- Ingestion: the exchange request budget shared by every concurrent function, and what backfills
-- need beyond the ledger of 0002 (idempotent requests, listing discovery, the part an exchange
-- cannot serve, timing for progress and ETA).

-- One row per budget bucket (`binance`, `okx:history`, ...): the weight granted per time slot over
-- the last window, as two short parallel arrays (about 20 slots). A grant is one locked row update,
-- so the table stays tiny however many requests go out.
CREATE TABLE rate_budgets (
  key        text        PRIMARY KEY,
  -- Slot start times (epoch ms, ascending) and the weight granted in each.
  slots      bigint[]    NOT NULL DEFAULT '{}',
  weights    integer[]   NOT NULL DEFAULT '{}',
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- No call to an exchange before `until_ms`: a ban (418, Bybit 403) or a Retry-After pause.
CREATE TABLE exchange_blocks (
  exchange   text   PRIMARY KEY,
  until_ms   bigint NOT NULL,
  kind       text   NOT NULL CHECK (kind IN ('banned', 'rate-limited'))
);

-- Grants `p_weight` at `p_now` (callers' clocks, epoch ms) when the slots still inside the window
-- leave room under `p_limit`, else says how long until enough weight leaves. Weight in a slot counts
-- until a whole window after the slot ends, so nothing leaves before the exchange forgets it. A
-- block on the exchange refuses every grant until it ends.
CREATE FUNCTION budget_take(p_key text, p_exchange text, p_weight integer, p_now bigint, p_limit integer,
                            p_window_ms bigint, p_slot_ms bigint)
RETURNS TABLE (wait_ms bigint, used integer, block_until bigint, block_kind text)
LANGUAGE plpgsql AS $$
DECLARE
  s bigint[];
  w integer[];
  keep_s bigint[] := '{}';
  keep_w integer[] := '{}';
  total integer := 0;
  cur bigint := p_now - p_now % p_slot_ms;
  want integer := least(p_weight, p_limit);
  excess integer;
  n integer;
  blk record;
BEGIN
  SELECT b.until_ms, b.kind INTO blk FROM exchange_blocks b WHERE b.exchange = p_exchange AND b.until_ms > p_now;
  IF FOUND THEN
    RETURN QUERY SELECT blk.until_ms - p_now, NULL::integer, blk.until_ms, blk.kind;
    RETURN;
  END IF;

  SELECT r.slots, r.weights INTO s, w FROM rate_budgets r WHERE r.key = p_key FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO rate_budgets (key) VALUES (p_key) ON CONFLICT DO NOTHING;
    SELECT r.slots, r.weights INTO s, w FROM rate_budgets r WHERE r.key = p_key FOR UPDATE;
  END IF;

  FOR i IN 1 .. coalesce(array_length(s, 1), 0) LOOP
    IF s[i] + p_slot_ms + p_window_ms > p_now THEN
      keep_s := keep_s || s[i];
      keep_w := keep_w || w[i];
      total := total + w[i];
    END IF;
  END LOOP;

  -- A zero-weight call only reads what the budget holds (to compare with usage an exchange reports).
  IF want = 0 THEN
    RETURN QUERY SELECT 0::bigint, total, NULL::bigint, NULL::text;
    RETURN;
  END IF;

  IF total + want <= p_limit THEN
    n := coalesce(array_length(keep_s, 1), 0);
    -- A slot at or after ours (a peer whose clock runs ahead) takes the weight: it then counts longer, never shorter.
    IF n > 0 AND keep_s[n] >= cur THEN
      keep_w[n] := keep_w[n] + want;
    ELSE
      keep_s := keep_s || cur;
      keep_w := keep_w || want;
    END IF;
    UPDATE rate_budgets SET slots = keep_s, weights = keep_w, updated_at = now() WHERE key = p_key;
    RETURN QUERY SELECT 0::bigint, total + want, NULL::bigint, NULL::text;
    RETURN;
  END IF;

  excess := total + want - p_limit;
  FOR i IN 1 .. coalesce(array_length(keep_s, 1), 0) LOOP
    excess := excess - keep_w[i];
    IF excess <= 0 THEN
      RETURN QUERY SELECT greatest(1, keep_s[i] + p_slot_ms + p_window_ms - p_now), total, NULL::bigint, NULL::text;
      RETURN;
    END IF;
  END LOOP;
  RETURN QUERY SELECT p_window_ms, total, NULL::bigint, NULL::text;
END
$$;

-- Moves `p_weight` from the slot a grant was made in to the slot its answer arrived in: the exchange
-- counted the request somewhere between the two, and only the later slot is sure not to release the
-- budget early. With `p_from_slot` NULL it only adds weight (usage the exchange reported that we did
-- not know of).
CREATE FUNCTION budget_shift(p_key text, p_weight integer, p_from_slot bigint, p_to_slot bigint)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  s bigint[];
  w integer[];
  out_s bigint[] := '{}';
  out_w integer[] := '{}';
  placed boolean := false;
  moved integer := p_weight;
BEGIN
  SELECT r.slots, r.weights INTO s, w FROM rate_budgets r WHERE r.key = p_key FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO rate_budgets (key, slots, weights) VALUES (p_key, ARRAY[p_to_slot], ARRAY[p_weight]) ON CONFLICT DO NOTHING;
    RETURN;
  END IF;
  FOR i IN 1 .. coalesce(array_length(s, 1), 0) LOOP
    IF p_from_slot IS NOT NULL AND s[i] = p_from_slot THEN
      -- The grant may already have left with its slot; then there is nothing to move, only to add.
      w[i] := w[i] - least(w[i], p_weight);
    END IF;
    IF NOT placed AND s[i] >= p_to_slot THEN
      IF s[i] = p_to_slot THEN
        w[i] := w[i] + moved;
      ELSE
        out_s := out_s || p_to_slot;
        out_w := out_w || moved;
      END IF;
      placed := true;
    END IF;
    IF w[i] > 0 THEN
      out_s := out_s || s[i];
      out_w := out_w || w[i];
    END IF;
  END LOOP;
  IF NOT placed THEN
    out_s := out_s || p_to_slot;
    out_w := out_w || moved;
  END IF;
  UPDATE rate_budgets SET slots = out_s, weights = out_w, updated_at = now() WHERE key = p_key;
END
$$;

-- Backfills: a request id makes a redelivered EventBridge event plan nothing twice; the discovered
-- listing and the part the exchange cannot serve (Kraken keeps only its newest rows) are kept for
-- the final status; started_at feeds the ETA.
ALTER TABLE backfills
  ADD COLUMN request_id      text UNIQUE,
  ADD COLUMN listed_at       timestamptz,
  ADD COLUMN unsupported_end timestamptz,
  ADD COLUMN started_at      timestamptz;

-- Claim order across all backfills, and the per-series checks the planner makes.
CREATE INDEX backfill_chunks_series_open ON backfill_chunks (series_id, range_start) WHERE status IN ('pending', 'claimed');
