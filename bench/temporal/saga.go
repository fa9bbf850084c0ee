package main

// The order saga on Temporal: one workflow per order running the four steps of
// our choreography as activities (reserve inventory, authorize payment, schedule
// shipping, confirm the order), each one transaction on that step's own database,
// with the compensations (release, refund, cancel) on a declined card, stock
// that is out and an unshippable country. Every activity is idempotent: a retried
// one finds its own row (a unique key per order) and answers as the first did.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// TaskQueue is where the worker polls and the load generator starts workflows.
const TaskQueue = "order-saga"

// Item is one line of a basket.
type Item struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// Order is what a customer placed: the workflow's input.
type Order struct {
	ID           string `json:"id"`
	CustomerID   string `json:"customer_id"`
	PaymentToken string `json:"payment_token"`
	Country      string `json:"country"`
	Items        []Item `json:"items"`
}

// Outcome is the workflow's result: confirmed or cancelled (and why), and when the
// order's database recorded it (ms since the epoch; the latency's end).
type Outcome struct {
	Confirmed bool   `json:"confirmed"`
	Reason    string `json:"reason,omitempty"`
	DecidedAt int64  `json:"decided_at"`
}

// The catalogue's prices in cents (services/order's seeded products).
var prices = map[string]int64{
	"sku-book": 1299, "sku-mug": 899, "sku-tshirt": 1999, "sku-headphones": 7999, "sku-lamp": 3499,
	"sku-limited": 4999, "sku-sold-out": 2499,
}

// The payment service's rule (services/payment/rules.c): only these tokens pay.
var goodTokens = map[string]bool{"tok_visa": true, "tok_mastercard": true, "tok_amex": true}

func amount(o Order) int64 {
	var sum int64
	for _, it := range o.Items {
		sum += prices[it.SKU] * int64(it.Quantity)
	}
	return sum
}

// OrderWorkflow runs one order's saga.
func OrderWorkflow(ctx workflow.Context, o Order) (Outcome, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{ // retried until it succeeds, like a redelivered event
			InitialInterval: 100 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 5 * time.Second,
		},
	})
	var a *Activities
	var ok bool
	var out Outcome
	cancel := func(reason string) (Outcome, error) {
		err := workflow.ExecuteActivity(ctx, a.CancelOrder, o, reason).Get(ctx, &out)
		return out, err
	}
	if err := workflow.ExecuteActivity(ctx, a.ReserveInventory, o).Get(ctx, &ok); err != nil {
		return out, err
	}
	if !ok {
		return cancel("out of stock")
	}
	if err := workflow.ExecuteActivity(ctx, a.AuthorizePayment, o).Get(ctx, &ok); err != nil {
		return out, err
	}
	if !ok {
		if err := workflow.ExecuteActivity(ctx, a.ReleaseInventory, o.ID).Get(ctx, nil); err != nil {
			return out, err
		}
		return cancel("payment declined")
	}
	if err := workflow.ExecuteActivity(ctx, a.ScheduleShipping, o).Get(ctx, &ok); err != nil {
		return out, err
	}
	if !ok {
		if err := workflow.ExecuteActivity(ctx, a.RefundPayment, o.ID).Get(ctx, nil); err != nil {
			return out, err
		}
		if err := workflow.ExecuteActivity(ctx, a.ReleaseInventory, o.ID).Get(ctx, nil); err != nil {
			return out, err
		}
		return cancel("unshippable destination")
	}
	err := workflow.ExecuteActivity(ctx, a.ConfirmOrder, o).Get(ctx, &out)
	return out, err
}

// Activities hold one pool per step's database.
type Activities struct {
	Inventory, Payment, Shipping, Orders *pgxpool.Pool
}

// Schemas: the tables of each step's database (CREATE ... IF NOT EXISTS).
var Schemas = map[string]string{
	"inventory": `
CREATE TABLE IF NOT EXISTS stock (sku text PRIMARY KEY, available integer NOT NULL CHECK (available >= 0));
CREATE TABLE IF NOT EXISTS reservations (order_id text PRIMARY KEY, state text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS reservation_lines (order_id text NOT NULL REFERENCES reservations,
  sku text NOT NULL REFERENCES stock, quantity integer NOT NULL CHECK (quantity > 0),
  PRIMARY KEY (order_id, sku));
INSERT INTO stock (sku, available) VALUES ('sku-book', 1000000000), ('sku-mug', 1000000000),
  ('sku-tshirt', 1000000000), ('sku-headphones', 1000000000), ('sku-lamp', 1000000000),
  ('sku-limited', 25), ('sku-sold-out', 0) ON CONFLICT DO NOTHING;`,
	"payment": `
CREATE TABLE IF NOT EXISTS payments (order_id text PRIMARY KEY, customer_id text NOT NULL,
  amount bigint NOT NULL, state text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());`,
	"shipping": `
CREATE TABLE IF NOT EXISTS shipments (order_id text PRIMARY KEY, country text NOT NULL,
  state text NOT NULL, tracking text, created_at timestamptz NOT NULL DEFAULT now());`,
	"order": `
CREATE TABLE IF NOT EXISTS orders (order_id text PRIMARY KEY, customer_id text NOT NULL,
  amount bigint NOT NULL, state text NOT NULL, reason text,
  decided_at timestamptz NOT NULL DEFAULT clock_timestamp());`,
}

// ReserveInventory takes the basket's quantities from stock in one transaction;
// false (and a rejected reservation) when any line is short.
func (a *Activities) ReserveInventory(ctx context.Context, o Order) (bool, error) {
	lines := map[string]int{}
	for _, it := range o.Items {
		lines[it.SKU] += it.Quantity
	}
	skus := make([]string, 0, len(lines))
	for s := range lines {
		skus = append(skus, s)
	}
	sort.Strings(skus) // one lock order for every transaction
	ok := true
	err := pgx.BeginFunc(ctx, a.Inventory, func(tx pgx.Tx) error {
		var state string
		err := tx.QueryRow(ctx, `INSERT INTO reservations (order_id, state) VALUES ($1, 'reserved')
			ON CONFLICT (order_id) DO NOTHING RETURNING state`, o.ID).Scan(&state)
		if errors.Is(err, pgx.ErrNoRows) { // a retry: the first attempt's answer stands
			if err = tx.QueryRow(ctx, `SELECT state FROM reservations WHERE order_id = $1`, o.ID).Scan(&state); err != nil {
				return err
			}
			ok = state != "rejected"
			return nil
		}
		if err != nil {
			return err
		}
		for _, s := range skus {
			tag, err := tx.Exec(ctx, `UPDATE stock SET available = available - $2 WHERE sku = $1 AND available >= $2`,
				s, lines[s])
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				ok = false
				break
			}
			if _, err = tx.Exec(ctx, `INSERT INTO reservation_lines (order_id, sku, quantity) VALUES ($1, $2, $3)`,
				o.ID, s, lines[s]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || ok {
		return ok, err
	}
	// Short: nothing taken, the order's reservation is rejected.
	_, err = a.Inventory.Exec(ctx, `INSERT INTO reservations (order_id, state) VALUES ($1, 'rejected')
		ON CONFLICT (order_id) DO NOTHING`, o.ID)
	return false, err
}

// ReleaseInventory gives a reservation's quantities back (once).
func (a *Activities) ReleaseInventory(ctx context.Context, orderID string) error {
	return pgx.BeginFunc(ctx, a.Inventory, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE reservations SET state = 'released', updated_at = now()
			WHERE order_id = $1 AND state = 'reserved'`, orderID)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE stock s SET available = s.available + l.quantity
			FROM reservation_lines l WHERE l.order_id = $1 AND l.sku = s.sku`, orderID)
		return err
	})
}

// AuthorizePayment records the payment, authorized or declined by the card's token.
func (a *Activities) AuthorizePayment(ctx context.Context, o Order) (bool, error) {
	state := "declined"
	if goodTokens[o.PaymentToken] {
		state = "authorized"
	}
	err := a.Payment.QueryRow(ctx, `WITH ins AS (
		  INSERT INTO payments (order_id, customer_id, amount, state) VALUES ($1, $2, $3, $4)
		  ON CONFLICT (order_id) DO NOTHING RETURNING state)
		SELECT state FROM ins UNION ALL SELECT state FROM payments WHERE order_id = $1 LIMIT 1`,
		o.ID, o.CustomerID, amount(o), state).Scan(&state)
	return state != "declined", err
}

// RefundPayment refunds an authorized payment (once).
func (a *Activities) RefundPayment(ctx context.Context, orderID string) error {
	_, err := a.Payment.Exec(ctx, `UPDATE payments SET state = 'refunded', updated_at = now()
		WHERE order_id = $1 AND state = 'authorized'`, orderID)
	return err
}

// ScheduleShipping books the shipment; false for a destination we do not ship to
// (services/shipping/rules.c: Antarctica, AQ) or no country at all.
func (a *Activities) ScheduleShipping(ctx context.Context, o Order) (bool, error) {
	state, tracking := "scheduled", fmt.Sprintf("SP%010d", fnv(o.ID)%10000000000)
	if len(o.Country) != 2 || o.Country == "AQ" {
		state, tracking = "unsupported", ""
	}
	err := a.Shipping.QueryRow(ctx, `WITH ins AS (
		  INSERT INTO shipments (order_id, country, state, tracking) VALUES ($1, $2, $3, NULLIF($4, ''))
		  ON CONFLICT (order_id) DO NOTHING RETURNING state)
		SELECT state FROM ins UNION ALL SELECT state FROM shipments WHERE order_id = $1 LIMIT 1`,
		o.ID, o.Country, state, tracking).Scan(&state)
	return state == "scheduled", err
}

// ConfirmOrder records the order as confirmed; the outcome carries the time of that write.
func (a *Activities) ConfirmOrder(ctx context.Context, o Order) (Outcome, error) {
	return a.decide(ctx, o, "confirmed", "")
}

// CancelOrder records the order as cancelled, with the reason.
func (a *Activities) CancelOrder(ctx context.Context, o Order, reason string) (Outcome, error) {
	return a.decide(ctx, o, "cancelled", reason)
}

func (a *Activities) decide(ctx context.Context, o Order, state, reason string) (Outcome, error) {
	var out Outcome
	var at time.Time
	err := a.Orders.QueryRow(ctx, `WITH ins AS (
		  INSERT INTO orders (order_id, customer_id, amount, state, reason) VALUES ($1, $2, $3, $4, NULLIF($5, ''))
		  ON CONFLICT (order_id) DO NOTHING RETURNING state, coalesce(reason, ''), decided_at)
		SELECT * FROM ins UNION ALL SELECT state, coalesce(reason, ''), decided_at FROM orders WHERE order_id = $1
		LIMIT 1`, o.ID, o.CustomerID, amount(o), state, reason).Scan(&state, &out.Reason, &at)
	out.Confirmed, out.DecidedAt = state == "confirmed", at.UnixMilli()
	return out, err
}

func fnv(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}
