// Package console benchmarks cairn-console's Omaha endpoint at 10,000 instances, on SQLite
// and on PostgreSQL: the console runs as a process of its own (the real binary, so that its
// memory is its own), its clients in the benchmark, all on the machine's cores. The clients
// send what Cairn's engine sends (engine.Request, with two pods), 16 at a time, and each
// phase prints its rate and latency:
//
//   - register: 10,000 machines' first checks (a write each);
//   - check: each machine once more, over a minute later, up to date: the steady state of a
//     fleet, whose machines check every 45 minutes (a read; the last check times written in
//     batches, one a second);
//   - recheck: checks within the minute (reads, nothing to write);
//   - held: each machine once after a new version is published to a group whose one
//     update in flight is its limit (the hold is recorded: a write each);
//   - reheld: held checks within the minute (reads).
//
// It ends with the console's peak RSS (VmHWM), the load average before and after each
// run, and the ratios to the targets: ≥ 2,000 check-ins a second with a p99 ≤ 50 ms on
// SQLite, in the steady state. Run it with `make bench` (go test -bench); `go test` alone
// does not.
package console

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-os/cairn/console/consoletest"
	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/update-engine/engine"
	"github.com/cairn-os/cairn/update-engine/omaha"
	"github.com/cairn-os/cairn/update-engine/payload"
)

const (
	instances = 10000
	clients   = 16
	// The console writes an instance's last check time at most once a minute
	// (updates.Service.LastCheckResolution): a check more than that after the last one is
	// the write path.
	resolution = time.Minute
	rechecks   = 20000

	targetRate = 2000                  // check-ins a second, SQLite
	targetP99  = 50 * time.Millisecond // SQLite
)

// consoleBinary is $CAIRN_BIN/cairn-console (make bench builds it), or one built now.
func consoleBinary(b *testing.B) string {
	if dir := os.Getenv("CAIRN_BIN"); dir != "" {
		return testenv.RequireFile(b, filepath.Join(dir, "cairn-console"))
	}
	testenv.RequireCommand(b, "go")
	out := filepath.Join(b.TempDir(), "cairn-console")
	if o, err := exec.Command("go", "build", "-tags", "seccomp", "-o", out, "github.com/cairn-os/cairn/console/cmd/cairn-console").CombinedOutput(); err != nil {
		b.Fatalf("go build cairn-console: %v\n%s", err, o)
	}
	return out
}

// phase is one measured run of checks.
type phase struct {
	name    string
	n       int
	elapsed time.Duration
	lat     []time.Duration // sorted
}

func (p phase) rate() float64 { return float64(p.n) / p.elapsed.Seconds() }

func (p phase) pct(q float64) time.Duration {
	if len(p.lat) == 0 {
		return 0
	}
	return p.lat[min(len(p.lat)-1, int(q*float64(len(p.lat))))]
}

// result is one database's run.
type result struct {
	db                string
	phases            []phase
	rssKiB            int64
	loadBefore, after string // the load averages
}

// BenchmarkCheckIns runs the phases against a console on SQLite, then on PostgreSQL (a
// server of the benchmark's own, skipped without Debian's postgresql), and prints the
// table.
func BenchmarkCheckIns(b *testing.B) {
	bin := consoleBinary(b)
	var results []result
	b.Run("sqlite", func(b *testing.B) {
		r := run(b, bin, "sqlite", filepath.Join(b.TempDir(), "console.db"))
		results = append(results, r)
		report(b, r)
	})
	b.Run("postgres", func(b *testing.B) {
		r := run(b, bin, "postgres", testenv.Postgres(b))
		results = append(results, r)
		report(b, r)
	})
	if len(results) > 0 {
		printTable(results)
	}
}

func report(b *testing.B, r result) {
	p := r.phase("check")
	b.ReportMetric(p.rate(), "checks/s")
	b.ReportMetric(ms(p.pct(0.99)), "p99-ms")
	b.ReportMetric(float64(r.rssKiB)/1024, "peak-RSS-MiB")
}

func (r result) phase(name string) phase {
	for _, p := range r.phases {
		if p.name == name {
			return p
		}
	}
	return phase{}
}

func printTable(results []result) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "cairn-console Omaha check-ins, %d instances, %d concurrent clients (Cairn's engine's requests, two pods each), console and clients on the same cores:\n",
		instances, clients)
	fmt.Fprintf(&sb, "  %-10s", "")
	for _, r := range results {
		fmt.Fprintf(&sb, " | %-36s", r.db)
	}
	sb.WriteString("\n")
	for i, p := range results[0].phases {
		fmt.Fprintf(&sb, "  %-10s", p.name)
		for _, r := range results {
			q := r.phases[i]
			fmt.Fprintf(&sb, " | %6.0f/s  p50 %5.1f ms  p99 %5.1f ms", q.rate(), ms(q.pct(0.5)), ms(q.pct(0.99)))
		}
		sb.WriteString("\n")
	}
	fmt.Fprintf(&sb, "  %-10s", "peak RSS")
	for _, r := range results {
		fmt.Fprintf(&sb, " | %-36s", fmt.Sprintf("%.0f MiB (the console process's)", float64(r.rssKiB)/1024))
	}
	sb.WriteString("\n")
	fmt.Fprintf(&sb, "  %-10s", "load avg")
	for _, r := range results {
		fmt.Fprintf(&sb, " | %-36s", r.loadBefore+" → "+r.after)
	}
	sb.WriteString("\n")
	if results[0].db == "sqlite" {
		sq := results[0].phase("check")
		fmt.Fprintf(&sb, "  target on SQLite: ≥ %d check-ins/s, p99 ≤ %s: the steady state (check) is %.2f× the rate, its p99 %.2f× the bound\n",
			targetRate, targetP99, sq.rate()/targetRate, float64(sq.pct(0.99))/float64(targetP99))
	}
	fmt.Print(sb.String())
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// loadAvg is the machine's 1, 5 and 15 minute load averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

// console is a running cairn-console.
type console struct {
	url, token string
	pid        int
	http       *http.Client
}

func run(b *testing.B, bin, name, dsn string) result {
	dir := b.TempDir()
	privPEM, pubPEM, err := payload.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	key, err := payload.ParsePrivateKey(privPEM)
	if err != nil {
		b.Fatal(err)
	}
	keyFile, pwFile := filepath.Join(dir, "key.pem"), filepath.Join(dir, "password")
	importDir := filepath.Join(dir, "import", "stable")
	if err := errors.Join(os.WriteFile(keyFile, pubPEM, 0o644), os.WriteFile(pwFile, []byte("bench-password\n"), 0o600),
		os.MkdirAll(importDir, 0o755),
		os.Rename(consoletest.BuildPayload(b, "1.0.0", "amd64-usr", key, nil), filepath.Join(importDir, "1.0.0.cairn"))); err != nil {
		b.Fatal(err)
	}
	next := consoletest.BuildPayload(b, "2.0.0", "amd64-usr", key, nil)

	cli := func(args ...string) string {
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			b.Fatalf("cairn-console %s: %v", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out))
	}
	cli("migrate", "-db", dsn)
	cli("user", "add", "-db", dsn, "-role", "admin", "-password-file", pwFile, "admin")
	token := cli("token", "create", "-db", dsn, "-user", "admin", "-name", "bench")

	cmd := exec.Command(bin, "serve", "-db", dsn, "-listen", "127.0.0.1:0", "-keys", keyFile, "-payload-dir", filepath.Join(dir, "payloads"),
		"-import-dir", filepath.Dir(importDir), "-log-level", "warn")
	stdout, _ := cmd.StdoutPipe()
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if b.Failed() {
			b.Logf("cairn-console's log:\n%s", logs.String())
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("cairn-console serve: %v\n%s", err, logs.String())
	}
	go io.Copy(io.Discard, stdout)
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients, IdleConnTimeout: time.Minute}
	c := &console{url: strings.TrimSuffix(strings.TrimSpace(line), "/"), token: token, pid: cmd.Process.Pid, http: &http.Client{Transport: tr, Timeout: time.Minute}}

	machines := make([]*engine.Engine, instances)
	for i := range machines {
		machines[i] = &engine.Engine{AppID: "io.github.cairn-os.cairn", Group: "stable", Board: "amd64-usr", Version: "1.0.0",
			MachineID: fmt.Sprintf("%032x", i+1), BootID: fmt.Sprintf("{%032x}", i+1), MachineAlias: fmt.Sprintf("node-%05d", i+1),
			OEM: "qemu", OEMVersion: "0.3", AlephVersion: "1.0.0"}
	}
	pods := omaha.BoundPods([]omaha.Pod{
		{UUID: "5e0fd2a4-7c43-4d2f-a0a8-2f0c65a0b8a1", State: "running", Apps: []omaha.PodApp{{Name: "web", Image: "example.com/web:1.2", State: "running"}}},
		{UUID: "0b6bc7a6-1d52-4a39-9f7e-2f5d6c8e9a10", State: "running", Apps: []omaha.PodApp{{Name: "etcd", Image: "quay.io/coreos/etcd:v3.5", State: "running"}}},
	})
	omc := &omaha.Client{URL: c.url + "/v1/update/", HTTP: c.http}
	check := func(m *engine.Engine) error {
		resp, err := omc.Do(context.Background(), m.Request(omaha.InstallSourceScheduler, true, omaha.Report{Pods: pods}))
		if err != nil {
			return err
		}
		app, err := resp.App(m.AppID)
		if err != nil {
			return err
		}
		_, err = app.FindUpdate()
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	shuffled := func() []*engine.Engine {
		s := slices.Clone(machines)
		rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
		return s
	}
	random := func(n int) []*engine.Engine {
		s := make([]*engine.Engine, n)
		for i := range s {
			s[i] = machines[rng.IntN(len(machines))]
		}
		return s
	}

	res := result{db: name, loadBefore: loadAvg()}
	res.phases = append(res.phases, measure(b, "register", machines, check))
	registered := time.Now()
	time.Sleep(time.Until(registered.Add(resolution + time.Second)))
	res.phases = append(res.phases, measure(b, "check", shuffled(), check))
	res.phases = append(res.phases, measure(b, "recheck", random(rechecks), check))

	// 2.0.0 on the channel, one update in flight the most: one machine takes it, the others
	// are held.
	c.api(b, "PUT", "/apps/io.github.cairn-os.cairn/groups/stable", map[string]any{"policy": map[string]any{"max_in_flight": 1}})
	f, err := os.Open(next)
	if err != nil {
		b.Fatal(err)
	}
	c.upload(b, f)
	f.Close()
	holder := &engine.Engine{AppID: "io.github.cairn-os.cairn", Group: "stable", Board: "amd64-usr", Version: "1.0.0", MachineID: "holder"}
	resp, err := omc.Do(context.Background(), holder.Request(omaha.InstallSourceScheduler, true, omaha.Report{}))
	if err != nil {
		b.Fatal(err)
	}
	if app, _ := resp.App(holder.AppID); app == nil || app.UpdateCheck == nil || app.UpdateCheck.Status != omaha.StatusOK {
		b.Fatalf("the first machine was not offered 2.0.0: %+v", resp)
	}
	res.phases = append(res.phases, measure(b, "held", shuffled(), check))
	res.phases = append(res.phases, measure(b, "reheld", random(rechecks), check))
	res.rssKiB = vmHWM(c.pid)
	res.after = loadAvg()
	return res
}

// measure runs the checks of ms, clients at a time, and times each.
func measure(b *testing.B, name string, ms []*engine.Engine, check func(*engine.Engine) error) phase {
	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	var failed atomic.Value
	start := time.Now()
	for w := range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ms) {
					return
				}
				t0 := time.Now()
				if err := check(ms[i]); err != nil {
					failed.Store(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err, _ := failed.Load().(error); err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	p := phase{name: name, n: len(ms), elapsed: elapsed, lat: slices.Concat(lat...)}
	slices.Sort(p.lat)
	return p
}

func (c *console) api(b *testing.B, method, path string, body any) {
	js, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, c.url+"/api/v1"+path, bytes.NewReader(js))
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	c.do(b, req)
}

func (c *console) upload(b *testing.B, f io.Reader) {
	req, _ := http.NewRequest("POST", c.url+"/api/v1/apps/io.github.cairn-os.cairn/packages?publish=stable", f)
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/octet-stream")
	c.do(b, req)
}

func (c *console) do(b *testing.B, req *http.Request) {
	res, err := c.http.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	msg, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		b.Fatalf("%s %s: %s: %s", req.Method, req.URL.Path, res.Status, msg)
	}
}

// vmHWM is the peak resident memory of process pid, in KiB: the high-water mark of its own
// memory, which rusage's maxrss would mix with the parent's.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb
		}
	}
	return 0
}
