-- payment-service migration 100: customers, orders, payments
-- Applied once per database (common/include/saga/migrate.h); never edit a released one.
CREATE TABLE customers (
  customer_id text PRIMARY KEY,
  name text NOT NULL,
  credit_limit bigint NOT NULL CHECK (credit_limit >= 0),
-- captured minus refunded: what the customer owes
  balance bigint NOT NULL DEFAULT 0 CHECK (balance >= 0));
-- What OrderPlaced said (event-carried state), or a tombstone: cancelled before
-- OrderPlaced arrived.
CREATE TABLE orders (
  order_id text PRIMARY KEY,
  placed boolean NOT NULL DEFAULT false,
  cancelled boolean NOT NULL DEFAULT false,
  customer_id text,
  amount bigint,
  currency text,
  payment_token text,
  updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE payments (
  payment_id text PRIMARY KEY,
  order_id text NOT NULL UNIQUE,
  customer_id text NOT NULL,
  amount bigint NOT NULL,
  currency text NOT NULL,
  status text NOT NULL CHECK (status IN ('captured', 'failed', 'refunded')),
  failure_reason text,
  created_at timestamptz NOT NULL DEFAULT now(),
  refunded_at timestamptz);
-- The seeded customers (README); cust-frugal's limit is 50.00.
INSERT INTO customers (customer_id, name, credit_limit) VALUES
  ('cust-alice', 'Alice Example', 100000000000),
  ('cust-bob', 'Bob Example', 100000000000),
  ('cust-carol', 'Carol Example', 100000000000),
  ('cust-dave', 'Dave Example', 100000000000),
  ('cust-frugal', 'Frugal Example', 5000);
