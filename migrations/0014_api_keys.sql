-- API keys with a scope, stored and revoked at runtime (`candlekeep keys create|list|revoke`); the
-- deployed API's authorizer and the local server read this table on each (uncached) check. Only the
-- SHA-256 of a key is kept: the key itself is shown once, when it is created. A revoked key keeps its
-- row, so `keys list` still says who had access and until when.
CREATE TABLE api_keys (
  id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- Starts with a letter, so `keys revoke 12` means an id and `keys revoke notebook` a name.
  name         text        NOT NULL CHECK (name ~ '^[A-Za-z][A-Za-z0-9._-]{0,63}$'),
  -- read < write < admin; each route declares the scope it needs (x-candlekeep-scope in the OpenAPI).
  scope        text        NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
  key_hash     bytea       NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at   timestamptz
);
-- One live key per name (a name can be reused once its key is revoked).
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (name) WHERE revoked_at IS NULL;
