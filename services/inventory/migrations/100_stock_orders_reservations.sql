-- inventory-service migration 100: stock, orders, reservations
-- Applied once per database (common/include/saga/migrate.h); never edit a released one.
CREATE TABLE stock (
  sku text PRIMARY KEY,
  initial integer NOT NULL CHECK (initial >= 0),
  available integer NOT NULL CHECK (available >= 0),
  reserved integer NOT NULL DEFAULT 0 CHECK (reserved >= 0),
  shipped integer NOT NULL DEFAULT 0 CHECK (shipped >= 0),
  CHECK (initial = available + reserved + shipped));
-- One row per order seen: placed, reserved, rejected, released, shipped; or a
-- tombstone (cancelled before OrderPlaced arrived).
CREATE TABLE orders (
  order_id text PRIMARY KEY,
  state text NOT NULL CHECK (state IN
    ('pending', 'reserved', 'rejected', 'released', 'shipped')),
  placed boolean NOT NULL DEFAULT false,
  cancelled boolean NOT NULL DEFAULT false,
  reservation_id text,
  reject_reason text,
  reject_sku text,
  updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE reservation_lines (
  order_id text NOT NULL REFERENCES orders,
  sku text NOT NULL REFERENCES stock,
  quantity integer NOT NULL CHECK (quantity > 0),
  PRIMARY KEY (order_id, sku));
-- The seeded stock (docs/SERVICES.md); sku-sold-out has none on purpose.
INSERT INTO stock (sku, initial, available) VALUES
  ('sku-book', 1000000, 1000000),
  ('sku-mug', 1000000, 1000000),
  ('sku-tshirt', 1000000, 1000000),
  ('sku-headphones', 1000000, 1000000),
  ('sku-lamp', 1000000, 1000000),
  ('sku-limited', 25, 25),
  ('sku-sold-out', 0, 0);
