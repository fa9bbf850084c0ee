-- order-service migration 100: catalogue, orders, timeline
-- Applied once per database (common/include/saga/migrate.h); never edit a released one.
CREATE TABLE products (
  sku text PRIMARY KEY,
  name text NOT NULL,
  unit_price bigint NOT NULL CHECK (unit_price > 0),
  currency text NOT NULL);
-- The seeded catalogue (docs/API.md); inventory-service stocks the same SKUs.
INSERT INTO products (sku, name, unit_price, currency) VALUES
  ('sku-book', 'Paperback book', 1299, 'EUR'),
  ('sku-mug', 'Coffee mug', 899, 'EUR'),
  ('sku-tshirt', 'T-shirt', 1999, 'EUR'),
  ('sku-headphones', 'Headphones', 7999, 'EUR'),
  ('sku-lamp', 'Desk lamp', 3499, 'EUR'),
  ('sku-limited', 'Limited print (25 in stock)', 4999, 'EUR'),
  ('sku-sold-out', 'Sold-out item (never in stock)', 2499, 'EUR');
CREATE TABLE orders (
  seq bigserial NOT NULL UNIQUE,
  order_id text PRIMARY KEY,
  customer_id text NOT NULL,
  currency text NOT NULL,
  total_amount bigint NOT NULL,
  payment_token text NOT NULL,
  shipping_address jsonb NOT NULL,
  status text NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'CANCELLED')),
  reason text,
  detail text,
  correlation_id text NOT NULL,
  placed_event_id text NOT NULL,
  traceparent text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz);
CREATE INDEX orders_pending ON orders (created_at) WHERE status = 'PENDING';
CREATE INDEX orders_status_seq ON orders (status, seq);
CREATE TABLE order_items (
  order_id text NOT NULL REFERENCES orders,
  line_no integer NOT NULL,
  sku text NOT NULL REFERENCES products,
  name text NOT NULL,
  quantity integer NOT NULL CHECK (quantity > 0),
  unit_price bigint NOT NULL,
  PRIMARY KEY (order_id, line_no));
CREATE TABLE idempotency_keys (
  key text PRIMARY KEY,
  request_hash text NOT NULL,
  order_id text NOT NULL REFERENCES orders DEFERRABLE INITIALLY DEFERRED,
  created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE timeline (
  seq bigserial PRIMARY KEY,
  order_id text NOT NULL,
  event_id text NOT NULL UNIQUE,
  event_type text NOT NULL,
  service text NOT NULL,
  occurred_at timestamptz NOT NULL,
  causation_id text,
  summary text NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX timeline_order ON timeline (order_id, seq);
