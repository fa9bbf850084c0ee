package main

// The yardstick of bench/cost.c, in Go and read the same way: CPU time of every
// named process and its live descendants from /proc/PID/stat (utime + stime +
// cutime + cstime), PostgreSQL with all its backends from its postmaster.pid, the
// machine's busy share from /proc/stat, and from pg_stat_database / pg_stat_wal
// the transactions (every database) and WAL records, bytes and fsyncs.

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

const clockTick = 100.0 // sysconf(_SC_CLK_TCK) on Linux

type procInfo struct {
	ppid int
	cpu  float64
}

func scanProcs() map[int]procInfo {
	out := map[int]procInfo{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')') // comm may hold spaces and parentheses
		if i < 0 || i+2 >= len(s) {
			continue
		}
		f := strings.Fields(s[i+2:])
		if len(f) < 15 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		var cpu float64
		for _, k := range []int{11, 12, 13, 14} { // utime stime cutime cstime
			v, _ := strconv.ParseFloat(f[k], 64)
			cpu += v
		}
		out[pid] = procInfo{ppid, cpu / clockTick}
	}
	return out
}

// treeCPU: root's CPU seconds and its live descendants', or -1 when root is not running.
func treeCPU(ps map[int]procInfo, root int) float64 {
	if _, ok := ps[root]; !ok || root <= 1 {
		return -1
	}
	sum := 0.0
	for pid, p := range ps {
		for q, depth := pid, 0; q > 1 && depth < 32; depth++ {
			if q == root {
				sum += p.cpu
				break
			}
			q = ps[q].ppid
		}
	}
	return sum
}

func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	return pid
}

// Proc is one process to measure: a name and the file holding its pid.
type Proc struct{ Name, PidFile string }

type costSnap struct {
	cpu                                   map[string]float64
	total, busy                           float64
	pgOK                                  bool
	pgErr                                 string
	xacts, walRecords, walBytes, walSyncs int64
	walWrites                             int64
	dbs                                   map[string]int64
}

func takeSnap(procs []Proc, pgURL string) costSnap {
	s := costSnap{cpu: map[string]float64{}, dbs: map[string]int64{}}
	if pgURL != "" { // PostgreSQL first, as cost.c does
		readPG(&s, pgURL)
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		for i := 1; i < len(f) && i <= 8; i++ {
			v, _ := strconv.ParseFloat(f[i], 64)
			s.total += v
			if i != 4 && i != 5 { // not idle, not iowait
				s.busy += v
			}
		}
		s.total /= clockTick
		s.busy /= clockTick
	}
	ps := scanProcs()
	for _, p := range procs {
		s.cpu[p.Name] = treeCPU(ps, readPid(p.PidFile))
	}
	return s
}

func readPG(s *costSnap, url string) {
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		s.pgErr = err.Error()
		return
	}
	defer c.Close(ctx)
	err = c.QueryRow(ctx, `SELECT (SELECT coalesce(sum(xact_commit + xact_rollback), 0) FROM pg_stat_database)::bigint,
		wal_records, wal_bytes::bigint, wal_sync, wal_write FROM pg_stat_wal`).
		Scan(&s.xacts, &s.walRecords, &s.walBytes, &s.walSyncs, &s.walWrites)
	if err != nil {
		s.pgErr = err.Error()
		return
	}
	s.pgOK = true
	rows, err := c.Query(ctx, `SELECT datname, (xact_commit + xact_rollback)::bigint FROM pg_stat_database
		WHERE datname IS NOT NULL`)
	if err != nil {
		return
	}
	for rows.Next() {
		var n string
		var x int64
		if rows.Scan(&n, &x) == nil {
			s.dbs[n] = x
		}
	}
	rows.Close()
}

// costReport prints the cost per order between two snapshots (as cost_report in
// bench/cost.c) and returns it for the JSON.
func costReport(a, b costSnap, orders int64, out io.Writer) map[string]any {
	per := 0.0
	if orders > 0 {
		per = 1 / float64(orders)
	}
	fmt.Fprintf(out, "  cost per order     (%d orders finished in the window)\n", orders)
	cpu := map[string]float64{}
	names := make([]string, 0, len(b.cpu))
	for n := range b.cpu {
		names = append(names, n)
	}
	sort.Strings(names)
	total := 0.0
	for _, n := range names {
		x, y := a.cpu[n], b.cpu[n]
		if x < 0 || y < 0 {
			fmt.Fprintf(out, "    CPU %-22s      n/a (not running throughout)\n", n)
			continue
		}
		total += y - x
		cpu[n] = round3((y - x) * 1000 * per)
		fmt.Fprintf(out, "    CPU %-22s %8.2f ms\n", n, (y-x)*1000*per)
	}
	cpu["stack"] = round3(total * 1000 * per)
	fmt.Fprintf(out, "    CPU %-22s %8.2f ms\n", "whole stack", total*1000*per)
	res := map[string]any{"orders": orders, "cpu_ms": cpu}
	if w := b.total - a.total; w > 0 {
		res["machine_busy"] = round3((b.busy - a.busy) / w)
		fmt.Fprintf(out, "    machine busy         %8.1f %% of all cores (the load generator included)\n",
			100*(b.busy-a.busy)/w)
	}
	if !a.pgOK || !b.pgOK {
		e := a.pgErr + b.pgErr
		if e == "" {
			e = "PG_SUPERUSER_URL unset"
		}
		fmt.Fprintf(out, "    database counters    n/a (%s)\n", e)
		return res
	}
	d := func(x, y int64) float64 { return float64(y-x) * per }
	fmt.Fprintf(out, "    transactions         %8.2f (every database)\n", d(a.xacts, b.xacts))
	byDB := map[string]float64{}
	dbs := make([]string, 0, len(b.dbs))
	for n := range b.dbs {
		dbs = append(dbs, n)
	}
	sort.Strings(dbs)
	for _, n := range dbs {
		if v := d(a.dbs[n], b.dbs[n]); v > 0 {
			byDB[n] = round3(v)
			fmt.Fprintf(out, "      in %-19s %8.2f\n", n, v)
		}
	}
	fmt.Fprintf(out, "    WAL records          %8.1f\n", d(a.walRecords, b.walRecords))
	fmt.Fprintf(out, "    WAL bytes            %8.0f\n", d(a.walBytes, b.walBytes))
	fmt.Fprintf(out, "    WAL fsyncs           %8.2f (writes %.2f)\n", d(a.walSyncs, b.walSyncs),
		d(a.walWrites, b.walWrites))
	res["transactions"] = round3(d(a.xacts, b.xacts))
	res["wal_records"] = round3(d(a.walRecords, b.walRecords))
	res["wal_bytes"] = round3(d(a.walBytes, b.walBytes))
	res["wal_fsyncs"] = round3(d(a.walSyncs, b.walSyncs))
	res["wal_writes"] = round3(d(a.walWrites, b.walWrites))
	res["transactions_by_database"] = byDB
	return res
}

// rss: VmRSS and VmHWM (peak) of a process, KiB.
func rss(pid int) (now, peak int64, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "VmRSS:" {
			now, _ = strconv.ParseInt(f[1], 10, 64)
		} else if len(f) >= 2 && f[0] == "VmHWM:" {
			peak, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	return now, peak, true
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
