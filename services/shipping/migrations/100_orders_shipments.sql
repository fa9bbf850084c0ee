-- shipping-service migration 100: orders, shipments
-- Applied once per database (common/include/saga/migrate.h); never edit a released one.
-- The shipping address OrderPlaced carried (event-carried state), or a
-- tombstone: cancelled before OrderPlaced arrived.
CREATE TABLE orders (
  order_id text PRIMARY KEY,
  placed boolean NOT NULL DEFAULT false,
  cancelled boolean NOT NULL DEFAULT false,
  recipient text,
  line1 text,
  line2 text,
  city text,
  postal_code text,
  country text,
  updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE shipments (
  shipment_id text PRIMARY KEY,
  order_id text NOT NULL UNIQUE,
  status text NOT NULL CHECK (status IN ('scheduled', 'failed', 'cancelled')),
  tracking_number text,
  carrier text,
  country text NOT NULL,
  failure_reason text,
  created_at timestamptz NOT NULL DEFAULT now(),
  cancelled_at timestamptz);
