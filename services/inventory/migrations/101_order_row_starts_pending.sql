-- inventory-service migration 101: an order's row starts pending
-- Applied once per database (common/include/saga/migrate.h); never edit a released one.
-- Any event may create an order's row (saga/participant.h): it starts pending.
ALTER TABLE orders ALTER COLUMN state SET DEFAULT 'pending';
