-- order-service migration 101: idempotency keys per principal
-- Applied once per database (common/include/saga/migrate.h); never edit a released one.
-- Idempotency keys are the principal's own (docs/API.md): one customer cannot
-- squat another's key. Keys stored before have the principal ''.
ALTER TABLE idempotency_keys ADD COLUMN principal text NOT NULL DEFAULT '';
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (principal, key);
CREATE INDEX orders_customer ON orders (customer_id, seq);
