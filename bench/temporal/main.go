// temporal-bench: the order saga on Temporal (saga.go), for scripts/bench temporal.
//
//	temporal-bench setup    create the four steps' tables (idempotent)
//	temporal-bench namespace  register the namespace (a fresh production-style server
//	                        has none), wait until it serves
//	temporal-bench worker   run the workflow and its activities
//	temporal-bench check    every decided order's rows agree across the four
//	                        databases (compensations included), stock adds up
//	temporal-bench load     place orders as bench/loadgen does and measure them:
//	  --rate R | --concurrency C, --duration S, --warmup S, --fail-share P (declined
//	  cards, default 0.1), --unshippable-share P (country AQ, default 0), --json FILE,
//	  --label TEXT, --proc NAME=PIDFILE (repeatable: the processes whose CPU per order
//	  and RSS are reported; PostgreSQL from STACK_PG_BASE/data/postmaster.pid)
//
// Environment: TEMPORAL_ADDRESS (host:port of the frontend, default 127.0.0.1:7233),
// TEMPORAL_NAMESPACE (default "default"), BENCH_DB_URL_FORMAT (the steps' databases,
// a URL with %s for inventory, payment, shipping and order), PG_SUPERUSER_URL and
// STACK_PG_BASE (PostgreSQL's counters and processes, as bench/loadgen).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/types/known/durationpb"
)

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func dial() client.Client {
	var c client.Client
	var err error
	// The server may still be starting: try for a minute.
	for i := 0; i < 60; i++ {
		c, err = client.Dial(client.Options{
			HostPort:  env("TEMPORAL_ADDRESS", "127.0.0.1:7233"),
			Namespace: env("TEMPORAL_NAMESPACE", "default"),
			Logger:    tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
		})
		if err == nil {
			return c
		}
		time.Sleep(time.Second)
	}
	log.Fatalf("temporal-bench: cannot reach the Temporal server: %v", err)
	return nil
}

func pools(ctx context.Context) *Activities {
	format := os.Getenv("BENCH_DB_URL_FORMAT")
	if format == "" {
		log.Fatal("temporal-bench: BENCH_DB_URL_FORMAT is unset")
	}
	open := func(db string) *pgxpool.Pool {
		p, err := pgxpool.New(ctx, fmt.Sprintf(format, db))
		if err != nil {
			log.Fatalf("temporal-bench: %s database: %v", db, err)
		}
		return p
	}
	return &Activities{Inventory: open("inventory"), Payment: open("payment"), Shipping: open("shipping"),
		Orders: open("order")}
}

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		log.Fatal("usage: temporal-bench setup|worker|load [options]")
	}
	ctx := context.Background()
	switch os.Args[1] {
	case "setup":
		a := pools(ctx)
		for db, p := range map[string]*pgxpool.Pool{"inventory": a.Inventory, "payment": a.Payment,
			"shipping": a.Shipping, "order": a.Orders} {
			if _, err := p.Exec(ctx, Schemas[db]); err != nil {
				log.Fatalf("temporal-bench: %s tables: %v", db, err)
			}
		}
	case "worker":
		a := pools(ctx)
		c := dial()
		w := worker.New(c, TaskQueue, worker.Options{})
		w.RegisterWorkflow(OrderWorkflow)
		w.RegisterActivity(a)
		if err := w.Run(worker.InterruptCh()); err != nil {
			log.Fatalf("temporal-bench: worker: %v", err)
		}
		c.Close()
	case "namespace":
		registerNamespace()
	case "check":
		os.Exit(check(ctx, pools(ctx)))
	case "load":
		os.Exit(load(os.Args[2:]))
	default:
		log.Fatalf("temporal-bench: unknown command %q", os.Args[1])
	}
}

func registerNamespace() {
	name := env("TEMPORAL_NAMESPACE", "default")
	nc, err := client.NewNamespaceClient(client.Options{HostPort: env("TEMPORAL_ADDRESS", "127.0.0.1:7233")})
	if err != nil {
		log.Fatalf("temporal-bench: %v", err)
	}
	defer nc.Close()
	ctx := context.Background()
	for i := 0; ; i++ {
		err = nc.Register(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace: name, WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour)})
		var exists *serviceerror.NamespaceAlreadyExists
		if err == nil || errors.As(err, &exists) {
			break
		}
		if i == 60 {
			log.Fatalf("temporal-bench: cannot register namespace %s: %v", name, err)
		}
		time.Sleep(time.Second)
	}
	// The frontend learns of a new namespace from its cache, refreshed every few seconds:
	// start a workflow no worker polls for until the frontend takes it.
	c := dial()
	defer c.Close()
	for i := 0; ; i++ {
		_, err = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "probe", TaskQueue: "probe"}, "probe")
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		if err == nil || errors.As(err, &started) {
			_ = c.TerminateWorkflow(ctx, "probe", "", "probe")
			return
		}
		if i == 60 {
			log.Fatalf("temporal-bench: namespace %s does not serve: %v", name, err)
		}
		time.Sleep(time.Second)
	}
}

// --- the load generator ------------------------------------------------------------

type procFlags []Proc

func (p *procFlags) String() string { return "" }
func (p *procFlags) Set(v string) error {
	n, f, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("--proc NAME=PIDFILE")
	}
	*p = append(*p, Proc{n, f})
	return nil
}

var (
	skus      = []string{"sku-book", "sku-mug", "sku-tshirt", "sku-headphones", "sku-lamp"}
	customers = []string{"cust-alice", "cust-bob", "cust-carol", "cust-dave"}
)

// basket: bench/loadgen's mix (1-3 lines of the five skus, 1-3 each, four customers;
// a declined card with fail-share, here also country AQ with unshippable-share).
func basket(r *rand.Rand, failShare, unshipShare float64) Order {
	o := Order{CustomerID: customers[r.IntN(4)], PaymentToken: "tok_visa", Country: "NL"}
	for i, n := 0, 1+r.IntN(3); i < n; i++ {
		o.Items = append(o.Items, Item{skus[r.IntN(5)], 1 + r.IntN(3)})
	}
	if r.Float64() < failShare {
		o.PaymentToken = "tok_chargeDeclined"
	} else if r.Float64() < unshipShare {
		o.Country = "AQ"
	}
	return o
}

func newRand(stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), stream))
}

func uuid4(r *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func pct(v []int64, q float64) int64 {
	if len(v) == 0 {
		return -1
	}
	i := int(math.Ceil(q*float64(len(v)))) - 1
	return v[max(0, min(i, len(v)-1))]
}

func load(args []string) int {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	rate := fs.Float64("rate", 0, "open loop: orders per second")
	clients := fs.Int("concurrency", 0, "closed loop: clients")
	duration := fs.Float64("duration", 30, "measured seconds")
	warmup := fs.Float64("warmup", 5, "seconds of load before the measured window")
	failShare := fs.Float64("fail-share", 0.1, "share of declined cards")
	unshipShare := fs.Float64("unshippable-share", 0, "share of orders to country AQ")
	jsonPath := fs.String("json", "", "write the numbers here")
	label := fs.String("label", "", "label")
	drain := fs.Float64("drain", 60, "seconds to wait for the placed orders' outcomes")
	var procs procFlags
	fs.Var(&procs, "proc", "NAME=PIDFILE (repeatable)")
	_ = fs.Parse(args)
	if (*rate > 0) == (*clients > 0) || *duration <= 0 {
		fs.Usage()
		return 64
	}
	senders := *clients
	if *rate > 0 {
		senders = int(math.Min(64, math.Max(4, *rate/20)))
	}
	pgURL := os.Getenv("PG_SUPERUSER_URL")
	if base := os.Getenv("STACK_PG_BASE"); base != "" {
		procs = append(procs, Proc{"postgres", filepath.Join(base, "data", "postmaster.pid")})
	}
	c := dial()
	defer c.Close()

	var (
		placed, startErrors, completed, confirmed, cancelled, failed atomic.Int64
		mu                                                           sync.Mutex
		lat                                                          []int64
		open                                                         = map[string]string{} // workflow id -> run id, until done
		next                                                         atomic.Int64
		wg, results                                                  sync.WaitGroup
	)
	start := time.Now()
	measureAt := start.Add(time.Duration(*warmup * float64(time.Second)))
	endAt := measureAt.Add(time.Duration(*duration * float64(time.Second)))
	ctx, stopAll := context.WithCancel(context.Background())
	defer stopAll()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sig; stopAll() }()

	// One order: start its workflow (the POST's analog) and, in the background
	// (open loop) or right here (closed loop), wait for its outcome.
	placeOne := func(r *rand.Rand, waitHere bool) {
		o := basket(r, *failShare, *unshipShare)
		o.ID = uuid4(r)
		placedAt := time.Now()
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: "order-" + o.ID, TaskQueue: TaskQueue,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		}, OrderWorkflow, o)
		if err != nil {
			if ctx.Err() == nil {
				startErrors.Add(1)
			}
			return
		}
		placed.Add(1)
		mu.Lock()
		open[run.GetID()] = run.GetRunID()
		mu.Unlock()
		wait := func() {
			var out Outcome
			if err := run.Get(ctx, &out); err != nil {
				if ctx.Err() == nil {
					failed.Add(1)
				}
				return
			}
			mu.Lock()
			delete(open, run.GetID())
			if !placedAt.Before(measureAt) && placedAt.Before(endAt) {
				lat = append(lat, out.DecidedAt-placedAt.UnixMilli())
			}
			mu.Unlock()
			completed.Add(1)
			if out.Confirmed {
				confirmed.Add(1)
			} else {
				cancelled.Add(1)
			}
		}
		if waitHere {
			wait()
			return
		}
		results.Add(1)
		go func() { defer results.Done(); wait() }()
	}
	for i := 0; i < senders; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := newRand(uint64(i + 1))
			for ctx.Err() == nil {
				if *rate > 0 { // open loop: order n is due at start + n / rate, whoever sends it
					n := next.Add(1) - 1
					due := start.Add(time.Duration(float64(n) * float64(time.Second) / *rate))
					if !due.Before(endAt) {
						return
					}
					time.Sleep(time.Until(due))
				} else if !time.Now().Before(endAt) {
					return
				}
				placeOne(r, *rate <= 0)
			}
		}(i)
	}
	// The cost of the measured window, divided by the orders finished in it.
	time.Sleep(time.Until(measureAt))
	doneA, snapA := completed.Load(), takeSnap(procs, pgURL)
	time.Sleep(time.Until(endAt))
	snapB, doneB := takeSnap(procs, pgURL), completed.Load()
	wg.Wait()
	// The stragglers: wait (up to --drain s) for every placed order's outcome.
	for until := time.Now().Add(time.Duration(*drain * float64(time.Second))); completed.Load()+failed.Load() < placed.Load() &&
		time.Now().Before(until) && ctx.Err() == nil; {
		time.Sleep(100 * time.Millisecond)
	}
	type rssKiB struct {
		Now  int64 `json:"now"`
		Peak int64 `json:"peak"`
	}
	rssOf := map[string]rssKiB{}
	for _, p := range procs {
		if p.Name == "postgres" {
			continue // as bench/loadgen: the programs, not the database
		}
		if now, peak, ok := rss(readPid(p.PidFile)); ok {
			rssOf[p.Name] = rssKiB{now, peak}
		}
	}
	// What did not finish is terminated, so that the next run starts clean.
	mu.Lock()
	left := make(map[string]string, len(open))
	for k, v := range open {
		left[k] = v
	}
	mu.Unlock()
	stopAll()
	var terminated atomic.Int64
	tctx, tcancel := context.WithTimeout(context.Background(), 180*time.Second)
	ids := make(chan [2]string)
	var tw sync.WaitGroup
	for i := 0; i < 16; i++ {
		tw.Add(1)
		go func() {
			defer tw.Done()
			for id := range ids {
				if c.TerminateWorkflow(tctx, id[0], id[1], "bench run over") == nil {
					terminated.Add(1)
				}
			}
		}()
	}
	for id, runID := range left {
		ids <- [2]string{id, runID}
	}
	close(ids)
	tw.Wait()
	tcancel()
	results.Wait()

	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	mode := "open"
	if *rate > 0 {
		fmt.Printf("temporal %s: open loop at %.0f orders/s", *label, *rate)
	} else {
		mode = "closed"
		fmt.Printf("temporal %s: closed loop, %d clients", *label, *clients)
	}
	fmt.Printf(", %.0f s measured after %.0f s warm-up, %.0f%% declined cards\n", *duration, *warmup, *failShare*100)
	fmt.Printf("  placed             %8d (start errors %d)\n", placed.Load(), startErrors.Load())
	fmt.Printf("  finished           %8d (confirmed %d, cancelled %d; unfinished after %.0f s terminated %d)\n",
		completed.Load(), confirmed.Load(), cancelled.Load(), *drain, terminated.Load())
	thr := float64(len(lat)) / *duration
	fmt.Printf("  throughput         %8.1f orders/s to outcome (measured window)\n", thr)
	fmt.Printf("  placed -> outcome  p50 %d ms, p95 %d ms, p99 %d ms, max %d ms (%d orders)\n",
		pct(lat, .5), pct(lat, .95), pct(lat, .99), pct(lat, 1), len(lat))
	names := make([]string, 0, len(rssOf))
	for n := range rssOf {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Printf("  RSS %-22s %6.1f MiB (peak %.1f MiB)\n", n, float64(rssOf[n].Now)/1024, float64(rssOf[n].Peak)/1024)
	}
	cost := costReport(snapA, snapB, doneB-doneA, os.Stdout)
	if *jsonPath != "" {
		b, _ := json.Marshal(map[string]any{
			"label": *label, "mode": mode, "rate": *rate, "clients": senders, "duration_s": *duration,
			"placed": placed.Load(), "start_errors": startErrors.Load(), "finished": completed.Load(),
			"confirmed": confirmed.Load(), "cancelled": cancelled.Load(), "terminated": terminated.Load(),
			"throughput": round3(thr), "p50_ms": pct(lat, .5), "p95_ms": pct(lat, .95), "p99_ms": pct(lat, .99),
			"max_ms": pct(lat, 1), "rss_kib": rssOf, "cost": cost,
		})
		if err := os.WriteFile(*jsonPath, append(b, '\n'), 0o644); err != nil {
			log.Printf("temporal-bench: %v", err)
		}
	}
	if startErrors.Load() > 0 || completed.Load() < placed.Load() {
		return 1
	}
	return 0
}
