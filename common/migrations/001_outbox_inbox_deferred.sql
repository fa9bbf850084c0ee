-- common/ migration 1: outbox, inbox and deferred events (every service database)
-- Applied once per database (common/include/saga/migrate.h); never edit a released one.
-- outbox: one row per event to publish, written in the business transaction.
--   Unpublished rows are found by a partial index; published ones are pruned by
--   the relay after its retention. headers is a JSON object of UTF-8 strings.
-- inbox: what each consumer has processed, for exactly-once effects.
-- deferred: events that arrived before what they need (e.g. a trigger before its
--   OrderPlaced), kept with their original bytes until it lands.
-- The outbox_relay role, where it exists, may read, mark and prune the outbox only.
CREATE TABLE outbox (
  id           bigserial   PRIMARY KEY,
  topic        text        NOT NULL,
  msg_key      text        NOT NULL,
  event_type   text        NOT NULL,
  event_id     text        NOT NULL,
  payload      bytea       NOT NULL,
  headers      jsonb       NOT NULL DEFAULT '{}',
  created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
  published_at timestamptz
);
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
CREATE TABLE inbox (
  consumer     text        NOT NULL,
  event_id     text        NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (consumer, event_id)
);
CREATE INDEX inbox_processed_at ON inbox (processed_at);
CREATE TABLE deferred (
  id          bigserial   PRIMARY KEY,
  consumer    text        NOT NULL,
  wait_key    text        NOT NULL,
  event_id    text        NOT NULL,
  event_type  text        NOT NULL,
  topic       text        NOT NULL,
  kpartition  int         NOT NULL,
  koffset     bigint      NOT NULL,
  msg_key     text,
  payload     bytea       NOT NULL,
  headers     jsonb       NOT NULL DEFAULT '{}',
  deferred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  UNIQUE (consumer, event_id)
);
CREATE INDEX deferred_wait ON deferred (consumer, wait_key);
DO $$ BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'outbox_relay') THEN
    GRANT USAGE ON SCHEMA public TO outbox_relay;
    GRANT SELECT, DELETE, UPDATE (published_at) ON outbox TO outbox_relay;
  END IF;
END $$;
