-- common/ migration 3: deferred keys and headers byte for byte (every service database)
-- Applied once per database (common/include/saga/migrate.h); never edit a released one.
-- The key and the headers are kept byte for byte (raw_key, raw_headers): text and jsonb
-- refused some (a NUL, bytes that are not UTF-8), and such an event could not be deferred.
-- Rows from before keep msg_key and headers, which the runtime still reads.
ALTER TABLE deferred ADD COLUMN raw_key bytea, ADD COLUMN raw_headers bytea;
