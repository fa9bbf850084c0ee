-- notification-service migration 100: orders, notifications
-- Applied once per database (common/include/saga/migrate.h); never edit a released one.
-- Event-carried state from OrderPlaced; a row with placed = false is an order
-- whose outcome arrived first (that outcome is deferred).
CREATE TABLE orders (
  order_id text PRIMARY KEY,
  placed boolean NOT NULL DEFAULT false,
  customer_id text,
  recipient_name text,
  total_amount bigint,
  currency text,
  updated_at timestamptz NOT NULL DEFAULT now());
-- One notification per order: the first outcome's.
CREATE TABLE notifications (
  notification_id text PRIMARY KEY,
  order_id text NOT NULL UNIQUE,
  outcome text NOT NULL,
  reason text,
  channel text NOT NULL,
  recipient text NOT NULL,
  message text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now());
