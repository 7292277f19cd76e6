// Package sim is the fleet simulator: machines that speak to a console as Cairn's update
// engine does, in compressed time. Each sends what the engine sends (engine.Request, the
// omaha package's events, Cairn's report with progress and pods), checks on the engine's
// schedule (updateconf.Schedule: the interval and its fuzz, backoff after failed checks),
// and takes an update through apply's steps with timings drawn from distributions: the
// download from the payload's size and the machine's bandwidth, the writes from its disk's
// speed, the wait for the reboot, the reboot, the bless. A chosen share of updates fails at
// a step (with that step's error code) and a chosen share rolls back after its boot tries;
// a machine declines the version it rolled back from, as the engine does. Every random draw
// of a machine comes from its own generator, seeded from the fleet's seed and its number,
// so that one seed gives the same machines the same bandwidths, timings and fates; the order
// in which the console hears them is the scheduler's. cairn-console simulate runs it.
package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-os/cairn/update-engine/api"
	"github.com/cairn-os/cairn/update-engine/apply"
	"github.com/cairn-os/cairn/update-engine/engine"
	"github.com/cairn-os/cairn/update-engine/omaha"
	"github.com/cairn-os/cairn/update-engine/updateconf"
)

// Config describes a fleet. Durations are simulated time.
type Config struct {
	// URL is the console's Omaha endpoint (…/v1/update/).
	URL   string
	AppID string
	// Hosts is the number of machines, Group their track, Version what they run at start.
	Hosts   int
	Group   string
	Version string
	// FailureRate is the share of updates that fail at one of apply's steps, RollbackRate
	// the share of installed updates whose new version never boots to good.
	FailureRate, RollbackRate float64
	// CheckInterval is the time between a machine's update checks (a fifth of it as fuzz,
	// as update_engine spreads them); ProgressInterval how often a machine reports the
	// progress of an update (the engine's default when 0).
	CheckInterval, ProgressInterval time.Duration
	// PayloadSize is the size downloads are timed by (the offered package's when 0).
	PayloadSize int64
	// Speed is how many simulated seconds pass in a second (1 when 0).
	Speed float64
	Seed  uint64
	// HTTP is the client the machines share (one of MaxConns connections when nil).
	HTTP *http.Client
	Log  *slog.Logger
}

// MaxConns bounds the connections a fleet opens to the console by default.
const MaxConns = 64

// Boot tries a new version gets before the loader falls back (update_engine -tries).
const bootTries = 3

// Kind is what a record says a machine heard or told.
type Kind string

const (
	KindOffered    Kind = "offered"    // a check was answered with an update
	KindStarted    Kind = "started"    // download started (13/1)
	KindFailed     Kind = "failed"     // the update failed at a step (3/0 with its code)
	KindInstalled  Kind = "installed"  // 800/1
	KindComplete   Kind = "complete"   // 3/2, the new version blessed good
	KindRolledBack Kind = "rolledback" // 3/0, 44
	KindDeclined   Kind = "declined"   // 3/0, 35: offered the version it rolled back from
)

// Record is one thing a machine heard from the console, or told it and was acknowledged:
// Sent is the (real) time its request went out, At the time the answer came. The console
// decided between the two, so that of two records, one happened before the other in the
// console only if its At is before the other's Sent.
type Record struct {
	Host     int
	Machine  string
	Kind     Kind
	Version  string
	Code     omaha.ErrorCode
	Sent, At time.Time
}

// Stats is a fleet's state.
type Stats struct {
	// Elapsed is the simulated time since Run started.
	Elapsed time.Duration
	// Versions counts the machines by the version they run; Updating those downloading or
	// writing an update, Rebooting those between installed and their report of the boot.
	Versions            map[string]int
	Updating, Rebooting int
	// Requests counts the requests the console answered: update checks, events, progress
	// reports; Errors those that failed. P50 and P99 are the latency of the answered ones
	// (to within a fifth: a histogram's buckets).
	Checks, Events, Reports, Errors int64
	P50, P99                        time.Duration
}

// Fleet is the simulated machines.
type Fleet struct {
	cfg   Config
	hosts []*host
	sched updateconf.Schedule
	start time.Time

	checks, events, reports, errs atomic.Int64
	latency                       histogram

	mu      sync.Mutex
	records []Record
}

// New makes a fleet of cfg.Hosts machines.
func New(cfg Config) (*Fleet, error) {
	switch {
	case cfg.URL == "":
		return nil, errors.New("sim: no console URL")
	case cfg.Hosts <= 0:
		return nil, fmt.Errorf("sim: %d hosts: want at least one", cfg.Hosts)
	case cfg.Version == "" || cfg.AppID == "" || cfg.Group == "":
		return nil, errors.New("sim: the application, group and version of the machines are required")
	case cfg.FailureRate < 0 || cfg.FailureRate > 1 || cfg.RollbackRate < 0 || cfg.RollbackRate > 1:
		return nil, fmt.Errorf("sim: failure rate %g, rollback rate %g: want shares from 0 to 1", cfg.FailureRate, cfg.RollbackRate)
	case cfg.CheckInterval < time.Minute:
		return nil, fmt.Errorf("sim: check interval %s: want at least a minute, as update_engine's", cfg.CheckInterval)
	case cfg.Speed < 0 || math.IsNaN(cfg.Speed) || math.IsInf(cfg.Speed, 0):
		return nil, fmt.Errorf("sim: speed %g: want a positive number", cfg.Speed)
	}
	if cfg.Speed == 0 {
		cfg.Speed = 1
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = engine.DefaultProgressInterval
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Transport: &http.Transport{MaxConnsPerHost: MaxConns, MaxIdleConnsPerHost: MaxConns, IdleConnTimeout: time.Minute},
			Timeout: time.Minute}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	f := &Fleet{cfg: cfg, sched: updateconf.Schedule{Interval: cfg.CheckInterval, Fuzz: cfg.CheckInterval / 5,
		MaxBackoff: max(4*time.Hour, cfg.CheckInterval)}}
	client := &omaha.Client{URL: cfg.URL, HTTP: cfg.HTTP}
	for i := range cfg.Hosts {
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
		h := &host{f: f, n: i, rng: rng, omaha: client, rolledBack: map[string]bool{}}
		h.e = &engine.Engine{AppID: cfg.AppID, Group: cfg.Group, Board: "amd64-usr", Version: cfg.Version, AlephVersion: cfg.Version,
			MachineID: fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64()), BootID: bootID(rng),
			MachineAlias: fmt.Sprintf("sim-%04d", i), OEM: "qemu", OEMVersion: "0.3"}
		h.pods = pods(rng)
		// Bandwidth: log-normal around 50 MB/s (a tenth of the machines below 20, a tenth
		// above 125); the disk writes at 150 to 450 MB/s.
		h.bandwidth = 50e6 * math.Exp(0.7*rng.NormFloat64())
		h.disk = 150e6 + 300e6*rng.Float64()
		f.hosts = append(f.hosts, h)
	}
	return f, nil
}

// Run runs the fleet until ctx ends.
func (f *Fleet) Run(ctx context.Context) error {
	f.start = time.Now()
	var wg sync.WaitGroup
	for _, h := range f.hosts {
		wg.Go(func() { h.run(ctx) })
	}
	wg.Wait()
	return nil
}

// Records are what the machines heard and told, in the order the answers came.
func (f *Fleet) Records() []Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Clone(f.records)
	slices.SortStableFunc(out, func(a, b Record) int { return a.At.Compare(b.At) })
	return out
}

// Stats is the fleet's state now.
func (f *Fleet) Stats() Stats {
	st := Stats{Versions: map[string]int{}, Checks: f.checks.Load(), Events: f.events.Load(), Reports: f.reports.Load(), Errors: f.errs.Load()}
	if !f.start.IsZero() {
		st.Elapsed = f.Sim(time.Since(f.start))
	}
	st.P50, st.P99 = f.latency.quantile(0.5), f.latency.quantile(0.99)
	for _, h := range f.hosts {
		version, state := h.state()
		st.Versions[version]++
		switch state {
		case stateUpdating:
			st.Updating++
		case stateRebooting:
			st.Rebooting++
		}
	}
	return st
}

// Sim is the simulated time that passes in real time d; Real the other way.
func (f *Fleet) Sim(d time.Duration) time.Duration  { return time.Duration(float64(d) * f.cfg.Speed) }
func (f *Fleet) Real(d time.Duration) time.Duration { return time.Duration(float64(d) / f.cfg.Speed) }

func (f *Fleet) record(r Record) {
	f.mu.Lock()
	f.records = append(f.records, r)
	f.mu.Unlock()
}

// sleep waits for simulated time d; false when ctx ended first.
func (f *Fleet) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(f.Real(d))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

type hostState int

const (
	stateIdle hostState = iota
	stateUpdating
	stateRebooting
)

// host is one simulated machine. Its engine is the request builder only: what it says of
// itself, its version.
type host struct {
	f          *Fleet
	n          int
	rng        *rand.Rand
	omaha      *omaha.Client
	pods       []omaha.Pod
	bandwidth  float64 // bytes a second
	disk       float64
	rolledBack map[string]bool

	mu sync.Mutex
	e  *engine.Engine
	st hostState
}

func (h *host) state() (string, hostState) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.e.Version, h.st
}

func (h *host) set(st hostState) {
	h.mu.Lock()
	h.st = st
	h.mu.Unlock()
}

func (h *host) run(ctx context.Context) {
	// Machines of a fleet started at different times: the first check falls anywhere in
	// an interval.
	wait := time.Duration(h.rng.Float64() * float64(h.f.cfg.CheckInterval))
	failures := 0
	for {
		if !h.f.sleep(ctx, wait) {
			return
		}
		u, err := h.check(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			h.f.cfg.Log.Debug("check failed", "host", h.e.MachineAlias, "err", err)
		} else {
			failures = 0
		}
		if u != nil {
			h.update(ctx, u)
		}
		wait = h.f.sched.Delay(false, failures, h.rng.Float64())
	}
}

// send sends a request and returns the console's answer for the machine's application.
func (h *host) send(ctx context.Context, req *omaha.Request) (*omaha.AppResponse, error) {
	start := time.Now()
	resp, err := h.omaha.Do(ctx, req)
	if err != nil {
		if ctx.Err() == nil {
			h.f.errs.Add(1)
		}
		return nil, err
	}
	h.f.latency.add(time.Since(start))
	return resp.App(h.e.AppID)
}

func (h *host) check(ctx context.Context) (*omaha.Update, error) {
	h.mu.Lock()
	req := h.e.Request(omaha.InstallSourceScheduler, true, omaha.Report{Pods: omaha.BoundPods(h.pods)})
	h.mu.Unlock()
	sent := time.Now()
	app, err := h.send(ctx, req)
	if err != nil {
		return nil, err
	}
	h.f.checks.Add(1)
	u, err := app.FindUpdate()
	if err != nil || u == nil {
		return nil, err
	}
	h.f.record(Record{Host: h.n, Machine: h.e.MachineID, Kind: KindOffered, Version: u.Version, Sent: sent, At: time.Now()})
	return u, nil
}

// event sends an event with a report, trying three times as the engine's record of an
// attempt would have it sent again, and records it once acknowledged.
func (h *host) event(ctx context.Context, ev *omaha.EventRequest, r omaha.Report, kind Kind, version string) bool {
	h.mu.Lock()
	req := h.e.Request("", false, r, ev)
	h.mu.Unlock()
	for try := range 3 {
		sent := time.Now()
		if _, err := h.send(ctx, req); err == nil {
			h.f.events.Add(1)
			if kind != "" {
				h.f.record(Record{Host: h.n, Machine: h.e.MachineID, Kind: kind, Version: version, Code: ev.ErrorCode, Sent: sent, At: time.Now()})
			}
			return true
		} else if ctx.Err() != nil || try == 2 {
			h.f.cfg.Log.Debug("event not sent", "host", h.e.MachineAlias, "event", ev.String(), "err", err)
		}
		if !h.f.sleep(ctx, h.f.Sim(time.Second)) {
			return false
		}
	}
	return false
}

// report sends a progress report; a failed one is dropped, as the engine drops it.
func (h *host) report(ctx context.Context, r omaha.Report) {
	h.mu.Lock()
	req := h.e.Request("", false, r)
	h.mu.Unlock()
	if _, err := h.send(ctx, req); err == nil {
		h.f.reports.Add(1)
	}
}

// step is one of apply's steps as the simulation times it.
type step struct {
	apply.Step
	d time.Duration
}

// steps times apply's steps for a payload of size bytes: the download by the machine's
// bandwidth, the /usr write and read-back by its disk (the image is about twice the
// compressed payload), the others a moment.
func (h *host) steps(size int64) []step {
	var out []step
	for _, s := range apply.Steps() {
		var d time.Duration
		switch s.Name {
		case "download":
			d = time.Duration(float64(size) / h.bandwidth * float64(time.Second))
		case "verify-payload":
			d = time.Duration(float64(size) / 1e9 * float64(time.Second))
		case "write-usr", "verify-usr":
			d = time.Duration(2 * float64(size) / h.disk * float64(time.Second))
		default:
			d = 50 * time.Millisecond
		}
		out = append(out, step{s, d})
	}
	return out
}

// update takes an offered update through the engine's sequence.
func (h *host) update(ctx context.Context, u *omaha.Update) {
	if h.rolledBack[u.Version] {
		// As the engine: a version this machine rolled back from is declined, so that the
		// console holds no update in progress for it.
		h.event(ctx, omaha.Failed(omaha.ErrorCodeUpdateIgnoredPerPolicy), omaha.Report{}, KindDeclined, u.Version)
		return
	}
	h.set(stateUpdating)
	defer h.set(stateIdle)
	size := u.Size
	if h.f.cfg.PayloadSize > 0 {
		size = h.f.cfg.PayloadSize
	}
	steps := h.steps(size)
	// The fate of this attempt, drawn up front in a fixed order.
	fails := h.rng.Float64() < h.f.cfg.FailureRate
	failAt, failFrac := h.rng.IntN(len(steps)), h.rng.Float64()
	rollsBack := h.rng.Float64() < h.f.cfg.RollbackRate

	if !h.event(ctx, omaha.DownloadStarted(), omaha.Report{Operation: api.OpDownloading, Step: "download"}, KindStarted, u.Version) {
		return
	}
	opTotal := map[string]time.Duration{}
	for _, s := range steps {
		opTotal[engine.Operation(s.Phase)] += s.d
	}
	var opDone time.Duration
	op := ""
	for i, s := range steps {
		if o := engine.Operation(s.Phase); o != op {
			if op == api.OpDownloading {
				h.event(ctx, omaha.DownloadFinished(), omaha.Report{Operation: op, Step: "download", Progress: 1}, "", u.Version)
			}
			op, opDone = o, 0
		}
		d := s.d
		if fails && i == failAt {
			d = time.Duration(failFrac * float64(d))
		}
		// The step, with a progress report every ProgressInterval.
		for left := d; left > 0; {
			chunk := min(left, h.f.cfg.ProgressInterval)
			if !h.f.sleep(ctx, chunk) {
				return
			}
			left -= chunk
			opDone += chunk
			if chunk == h.f.cfg.ProgressInterval {
				h.report(ctx, omaha.Report{Operation: op, Step: s.Name, Progress: omaha.Fraction(float64(opDone) / float64(opTotal[op])).Round()})
			}
		}
		if fails && i == failAt {
			h.event(ctx, omaha.Failed(s.Code), omaha.Report{Operation: api.OpReportingError, Step: s.Name,
				Progress: omaha.Fraction(float64(opDone) / float64(opTotal[op])).Round()}, KindFailed, u.Version)
			return
		}
	}
	if !h.event(ctx, omaha.Installed(), omaha.Report{Operation: api.OpNeedReboot, Progress: 1}, KindInstalled, u.Version) {
		return
	}
	h.set(stateRebooting)
	// The reboot: a wait for the reboot lock or window, then the boot; a version that
	// never boots to good takes its tries and the loader falls back.
	boots := 1
	if rollsBack {
		boots = bootTries + 1
	}
	down := time.Duration(h.rng.Float64() * float64(time.Minute))
	for range boots {
		down += 30*time.Second + time.Duration(h.rng.Float64()*float64(time.Minute))
	}
	bless := 20*time.Second + time.Duration(h.rng.Float64()*float64(40*time.Second))
	if !h.f.sleep(ctx, down) {
		return
	}
	h.mu.Lock()
	previous := h.e.Version
	h.e.BootID = bootID(h.rng)
	if !rollsBack {
		h.e.Version = u.Version
	}
	h.mu.Unlock()
	if rollsBack {
		h.rolledBack[u.Version] = true
		h.event(ctx, omaha.RolledBack(u.Version, bootTries, 0), omaha.Report{}, KindRolledBack, u.Version)
		return
	}
	if !h.f.sleep(ctx, bless) {
		return
	}
	h.event(ctx, omaha.Complete(previous), omaha.Report{}, KindComplete, u.Version)
}

func bootID(rng *rand.Rand) string {
	return fmt.Sprintf("{%08x-%04x-%04x-%04x-%012x}", rng.Uint32(), rng.Uint32()&0xffff, rng.Uint32()&0xffff, rng.Uint32()&0xffff, rng.Uint64()&0xffffffffffff)
}

// pods are a machine's pods: none to four, running.
func pods(rng *rand.Rand) []omaha.Pod {
	images := []string{"example.com/web:1.2", "quay.io/coreos/etcd:v3.5", "docker.io/library/nginx:1.27", "example.com/batch:7"}
	var out []omaha.Pod
	for range rng.IntN(5) {
		img := images[rng.IntN(len(images))]
		out = append(out, omaha.Pod{UUID: fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", rng.Uint32(), rng.Uint32()&0xffff, rng.Uint32()&0xfff,
			rng.Uint32()&0xfff, rng.Uint64()&0xffffffffffff), State: "running", Apps: []omaha.PodApp{{Name: "app", Image: img, State: "running"}}})
	}
	return out
}

// histogram counts latencies in buckets a fifth apart (2^(1/4)), from a microsecond to
// about a minute.
type histogram struct {
	buckets [104]atomic.Int64
}

func (h *histogram) add(d time.Duration) {
	us := max(float64(d.Microseconds()), 1)
	h.buckets[min(int(4*math.Log2(us)), len(h.buckets)-1)].Add(1)
}

// quantile is the upper bound of the bucket that holds quantile q.
func (h *histogram) quantile(q float64) time.Duration {
	var total int64
	for i := range h.buckets {
		total += h.buckets[i].Load()
	}
	if total == 0 {
		return 0
	}
	want := int64(math.Ceil(q * float64(total)))
	var n int64
	for i := range h.buckets {
		if n += h.buckets[i].Load(); n >= want {
			return time.Duration(math.Exp2(float64(i+1)/4) * float64(time.Microsecond))
		}
	}
	return time.Minute
}
