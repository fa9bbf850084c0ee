package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"
)

// The workflow's paths, with the activities mocked (no server, no database): which
// steps and compensations run, in which order, and the outcome.
func runOrder(t *testing.T, reserved, paid, shipped bool) ([]string, Outcome) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var a *Activities
	var calls []string
	rec := func(name string) func(args mock.Arguments) {
		return func(mock.Arguments) { calls = append(calls, name) }
	}
	env.OnActivity(a.ReserveInventory, mock.Anything, mock.Anything).Return(reserved, nil).Run(rec("reserve"))
	env.OnActivity(a.AuthorizePayment, mock.Anything, mock.Anything).Return(paid, nil).Run(rec("authorize"))
	env.OnActivity(a.ScheduleShipping, mock.Anything, mock.Anything).Return(shipped, nil).Run(rec("ship"))
	env.OnActivity(a.ReleaseInventory, mock.Anything, mock.Anything).Return(nil).Run(rec("release"))
	env.OnActivity(a.RefundPayment, mock.Anything, mock.Anything).Return(nil).Run(rec("refund"))
	env.OnActivity(a.ConfirmOrder, mock.Anything, mock.Anything).Return(Outcome{Confirmed: true, DecidedAt: 1}, nil).Run(rec("confirm"))
	env.OnActivity(a.CancelOrder, mock.Anything, mock.Anything, mock.Anything).Return(
		func(_ context.Context, _ Order, reason string) (Outcome, error) { return Outcome{Reason: reason}, nil }).Run(rec("cancel"))
	env.ExecuteWorkflow(OrderWorkflow, Order{ID: "o1", PaymentToken: "tok_visa", Country: "NL", Items: []Item{{"sku-book", 1}}})
	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("workflow did not complete: %v", env.GetWorkflowError())
	}
	var out Outcome
	if err := env.GetWorkflowResult(&out); err != nil {
		t.Fatal(err)
	}
	return calls, out
}

func TestOrderWorkflowPaths(t *testing.T) {
	for _, c := range []struct {
		name                    string
		reserved, paid, shipped bool
		want                    string
		reason                  string
	}{
		{"confirmed", true, true, true, "reserve authorize ship confirm", ""},
		{"declined card", true, false, true, "reserve authorize release cancel", "payment declined"},
		{"unshippable", true, true, false, "reserve authorize ship refund release cancel", "unshippable destination"},
		{"out of stock", false, true, true, "reserve cancel", "out of stock"},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls, out := runOrder(t, c.reserved, c.paid, c.shipped)
			got := ""
			for i, n := range calls {
				if i > 0 {
					got += " "
				}
				got += n
			}
			if got != c.want || out.Reason != c.reason || out.Confirmed != (c.reason == "") {
				t.Fatalf("steps %q, outcome %+v; want %q, reason %q", got, out, c.want, c.reason)
			}
		})
	}
}

func TestBasketMix(t *testing.T) {
	// bench/loadgen's mix: 1-3 lines, 1-3 each, of the five skus; about 10 % declined.
	r := newRand(1)
	declined := 0
	for i := 0; i < 10000; i++ {
		o := basket(r, 0.1, 0)
		if len(o.Items) < 1 || len(o.Items) > 3 || o.Country != "NL" {
			t.Fatalf("basket %+v", o)
		}
		for _, it := range o.Items {
			if it.Quantity < 1 || it.Quantity > 3 || prices[it.SKU] == 0 || it.SKU == "sku-limited" || it.SKU == "sku-sold-out" {
				t.Fatalf("line %+v", it)
			}
		}
		if o.PaymentToken != "tok_visa" {
			declined++
		}
	}
	if declined < 800 || declined > 1200 {
		t.Fatalf("%d of 10000 declined", declined)
	}
}
