-- common/ migration 2: deferred events that failed when released (every service database)
-- Applied once per database (common/include/saga/migrate.h); never edit a released one.
-- A deferred event that fails for good when it is released is marked dead, then sent to
-- the DLQ after the commit and deleted (consumer_tx.c).
ALTER TABLE deferred ADD COLUMN dead_reason text, ADD COLUMN dead_at timestamptz;
CREATE INDEX deferred_dead ON deferred (consumer, id) WHERE dead_reason IS NOT NULL;
