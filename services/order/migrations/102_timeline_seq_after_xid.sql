-- order-service migration 102: a timeline row's seq is taken after its transaction id
-- Applied once per database (common/include/saga/migrate.h); never edit a released one.
-- The live page's feed (docs/WEB.md) gives a hole in seq up once every transaction that
-- could still fill it has ended, judged by transaction ids: a transaction must have its
-- id before it takes a seq. An INSERT that is its transaction's first write would take
-- the seq (the default) first, and could then wait without an id (ON CONFLICT's check of
-- a row another transaction is inserting). Asking for the id first closes that. The
-- sequence must keep CACHE 1: a cached seq handed out later would break the same rule.
-- The ALTER waits for every transaction that has taken a seq: a bounded wait, so that
-- an idle session holding the table fails this start (retried) instead of queueing
-- every writer behind it.
SET LOCAL lock_timeout = '5s';
ALTER TABLE timeline ALTER COLUMN seq SET DEFAULT
  CASE WHEN pg_current_xact_id() IS NOT NULL THEN nextval('timeline_seq_seq') END;
