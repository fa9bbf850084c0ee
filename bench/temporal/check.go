package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// check: the four databases agree on every decided order, and the stock adds up.
//
//	confirmed                  reserved, authorized, scheduled
//	cancelled payment declined released, declined, no shipment
//	cancelled unshippable      released, refunded, unsupported
//
// Prints what it found; exit 1 on any order that disagrees.
func check(ctx context.Context, a *Activities) int {
	states := func(p *pgxpool.Pool, q string) map[string]string {
		m := map[string]string{}
		rows, err := p.Query(ctx, q)
		if err != nil {
			fmt.Printf("check: %v\n", err)
			return nil
		}
		defer rows.Close()
		for rows.Next() {
			var id, st string
			if rows.Scan(&id, &st) == nil {
				m[id] = st
			}
		}
		return m
	}
	orders := states(a.Orders, `SELECT order_id, state || ':' || coalesce(reason, '') FROM orders`)
	res := states(a.Inventory, `SELECT order_id, state FROM reservations`)
	pay := states(a.Payment, `SELECT order_id, state FROM payments`)
	ship := states(a.Shipping, `SELECT order_id, state FROM shipments`)
	if orders == nil || res == nil || pay == nil || ship == nil {
		return 1
	}
	want := map[string][3]string{
		"confirmed:":                        {"reserved", "authorized", "scheduled"},
		"cancelled:payment declined":        {"released", "declined", ""},
		"cancelled:unshippable destination": {"released", "refunded", "unsupported"},
	}
	count, bad := map[string]int{}, 0
	for id, st := range orders {
		count[st]++
		w, ok := want[st]
		if got := [3]string{res[id], pay[id], ship[id]}; !ok || got != w {
			if bad++; bad <= 5 {
				fmt.Printf("check: order %s %s: reservation %q, payment %q, shipment %q\n", id, st, got[0], got[1], got[2])
			}
		}
	}
	// What the reservations still hold is what left the stock.
	var held, taken int64
	if err := a.Inventory.QueryRow(ctx, `SELECT
		  (SELECT coalesce(sum(l.quantity), 0) FROM reservation_lines l JOIN reservations r USING (order_id)
		   WHERE r.state = 'reserved'),
		  (SELECT coalesce(sum(1000000000 - available), 0) FROM stock WHERE sku LIKE 'sku-%' AND sku NOT IN ('sku-limited', 'sku-sold-out'))`).
		Scan(&held, &taken); err != nil {
		fmt.Printf("check: %v\n", err)
		return 1
	}
	fmt.Printf("check: %d orders decided: %d confirmed, %d declined (released, no shipment), %d unshippable (released, refunded); %d disagree\n",
		len(orders), count["confirmed:"], count["cancelled:payment declined"], count["cancelled:unshippable destination"], bad)
	fmt.Printf("check: stock taken %d = held by live reservations %d: %v\n", taken, held, taken == held)
	if bad > 0 || taken != held || len(orders) == 0 {
		return 1
	}
	return 0
}
