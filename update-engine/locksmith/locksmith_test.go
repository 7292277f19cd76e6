package locksmith

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/update-engine/updateconf"
)

func TestSemaphoreValue(t *testing.T) {
	s := NewSemaphore()
	if err := s.Lock("a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Lock("a"); !errors.Is(err, ErrHeld) {
		t.Fatalf("relock: %v", err)
	}
	if err := s.Lock("b"); !errors.Is(err, ErrNoSemaphore) {
		t.Fatalf("second holder with max 1: %v", err)
	}
	s.SetMax(2)
	if err := s.Lock("b"); err != nil {
		t.Fatal(err)
	}
	if got := string(s.Marshal()); got != `{"semaphore":0,"max":2,"holders":["a","b"]}` {
		t.Fatalf("JSON %s", got)
	}
	if err := s.Unlock("c"); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("unlock by a stranger: %v", err)
	}
	s.Unlock("a")
	back, err := ParseSemaphore([]byte(`{"semaphore":1,"max":2,"holders":["b"]}`))
	if err != nil || back.Semaphore != s.Semaphore || back.Holders[0] != "b" {
		t.Fatalf("%+v %v", back, err)
	}
	for _, bad := range []string{``, `[]`, `{"semaphore":3,"max":1}`, `{"max":-1}`} {
		if _, err := ParseSemaphore([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if SemaphoreKey("") != "/coreos.com/updateengine/rebootlock/semaphore" ||
		SemaphoreKey("web") != "/coreos.com/updateengine/rebootlock/groups/web/semaphore" {
		t.Fatal("key layout")
	}
}

func TestWindow(t *testing.T) {
	utc := time.UTC
	at := func(s string) time.Time { t, _ := time.ParseInLocation("2006-01-02 15:04", s, utc); return t }
	daily, _ := ParseWindow("04:00", "1h")
	daily.Location = utc
	weekly, _ := ParseWindow("Thu 04:00", "90m")
	weekly.Location = utc
	cases := []struct {
		w    *Window
		now  string
		want time.Duration
		next time.Duration // until the start of the window after the open one
	}{
		{nil, "2026-11-26 12:00", 0, 0},
		{daily, "2026-11-26 04:30", 0, 23*time.Hour + 30*time.Minute},
		{daily, "2026-11-26 05:00", 23 * time.Hour, 23 * time.Hour},
		{daily, "2026-11-26 03:00", time.Hour, time.Hour},
		{weekly, "2026-11-26 05:29", 0, 7*24*time.Hour - 89*time.Minute}, // Thursday
		{weekly, "2026-11-26 05:30", 7*24*time.Hour - 90*time.Minute, 7*24*time.Hour - 90*time.Minute},
		{weekly, "2026-11-25 04:00", 24 * time.Hour, 24 * time.Hour}, // Wednesday
	}
	for _, c := range cases {
		if got := c.w.Wait(at(c.now)); got != c.want {
			t.Errorf("window %+v at %s: wait %v, want %v", c.w, c.now, got, c.want)
		}
		if got := c.w.Next(at(c.now)); got != c.next {
			t.Errorf("window %+v at %s: next in %v, want %v", c.w, c.now, got, c.next)
		}
	}
	for _, bad := range [][2]string{{"Thx 04:00", "1h"}, {"25:00", "1h"}, {"04:00", "0"}, {"04:00", ""}, {"04:00", "25h"}} {
		if _, err := ParseWindow(bad[0], bad[1]); err == nil {
			t.Errorf("accepted %v", bad)
		}
	}
}

func etcdClient(t *testing.T, endpoint string) *clientv3.Client {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Three machines need a reboot; with max=1 they reboot one at a time, each releasing the
// lock when it is back.
func TestThreeMachinesOneAtATime(t *testing.T) {
	ep := testenv.Etcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := &EtcdLock{Client: etcdClient(t, ep), Key: SemaphoreKey("")}
	if err := admin.SetMax(ctx, 1); err != nil {
		t.Fatal(err)
	}
	var rebooting, maxRebooting, rebooted atomic.Int32
	var wg sync.WaitGroup
	for i := range 3 {
		id := fmt.Sprintf("machine-%d", i)
		lock := &EtcdLock{Client: etcdClient(t, ep), Key: SemaphoreKey(""), ID: id}
		wg.Go(func() {
			d := &Daemon{Strategy: updateconf.StrategyEtcdLock, Locker: lock, Poll: 20 * time.Millisecond,
				NeedReboot: func(context.Context) (bool, error) { return true, nil },
				Reboot: func(context.Context) error {
					n := rebooting.Add(1)
					for {
						m := maxRebooting.Load()
						if n <= m || maxRebooting.CompareAndSwap(m, n) {
							break
						}
					}
					return nil
				}}
			if err := d.Run(ctx); err != nil {
				t.Errorf("%s: %v", id, err)
				return
			}
			time.Sleep(150 * time.Millisecond) // the reboot
			rebooting.Add(-1)
			rebooted.Add(1)
			// locksmithd after the boot: release.
			after := &Daemon{Strategy: updateconf.StrategyEtcdLock, Locker: lock, Poll: 20 * time.Millisecond}
			if err := after.ReleaseAfterBoot(ctx); err != nil {
				t.Errorf("%s: release: %v", id, err)
			}
		})
	}
	wg.Wait()
	if rebooted.Load() != 3 || maxRebooting.Load() != 1 {
		t.Fatalf("%d rebooted, at most %d at once; want 3 and 1", rebooted.Load(), maxRebooting.Load())
	}
	s, err := admin.Get(ctx)
	if err != nil || s.Semaphore != 1 || s.Max != 1 || len(s.Holders) != 0 {
		t.Fatalf("semaphore after: %+v %v", s, err)
	}
	// The value is locksmith's JSON, readable by old tooling.
	resp, _ := admin.Client.Get(ctx, SemaphoreKey(""))
	var raw map[string]any
	if err := json.Unmarshal(resp.Kvs[0].Value, &raw); err != nil || raw["max"] != float64(1) {
		t.Fatalf("stored value %s", resp.Kvs[0].Value)
	}
}

// Concurrent lockers never both win, whatever the interleaving of their transactions.
func TestEtcdLockRace(t *testing.T) {
	ep := testenv.Etcd(t)
	ctx := context.Background()
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 3 {
		l := &EtcdLock{Client: etcdClient(t, ep), Key: SemaphoreKey("race"), ID: fmt.Sprint(i)}
		wg.Go(func() {
			if err := l.Lock(ctx); err == nil {
				wins.Add(1)
			} else if !errors.Is(err, ErrNoSemaphore) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d machines took a max=1 lock", wins.Load())
	}
	admin := &EtcdLock{Client: etcdClient(t, ep), Key: SemaphoreKey("race")}
	s, _ := admin.Get(ctx)
	if err := admin.UnlockHolder(ctx, s.Holders[0]); err != nil {
		t.Fatal(err)
	}
	if s, _ := admin.Get(ctx); s.Semaphore != 1 || len(s.Holders) != 0 {
		t.Fatalf("after operator unlock: %+v", s)
	}
}

func TestFleetLock(t *testing.T) {
	var mu sync.Mutex
	holder := ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body fleetLockBody
		json.NewDecoder(r.Body).Decode(&body)
		if r.Header.Get("fleet-lock-protocol") != "true" || body.ClientParams.Group != "default" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/v1/pre-reboot":
			if holder != "" && holder != body.ClientParams.ID {
				w.WriteHeader(http.StatusConflict)
				json.NewEncoder(w).Encode(map[string]string{"kind": "failed_lock", "value": "held by " + holder})
				return
			}
			holder = body.ClientParams.ID
		case "/v1/steady-state":
			if holder == body.ClientParams.ID {
				holder = ""
			}
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	a, b := &FleetLock{URL: srv.URL, ID: "a"}, &FleetLock{URL: srv.URL + "/", ID: "b"}
	if err := a.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	var fe *FleetLockError
	if err := b.Lock(ctx); !errors.As(err, &fe) || fe.Kind != "failed_lock" {
		t.Fatalf("b got the lock: %v", err)
	}
	a.Unlock(ctx)
	if err := b.Lock(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestDaemonWaitsForWindowAndOff(t *testing.T) {
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC) // a Thursday, 03:00
	w, _ := ParseWindow("04:00", "1h")
	w.Location = time.UTC
	var slept []time.Duration
	rebooted := false
	d := &Daemon{Strategy: updateconf.StrategyReboot, Window: w, Poll: 2 * time.Hour,
		Now: func() time.Time { return now },
		Sleep: func(_ context.Context, dd time.Duration) error {
			slept = append(slept, dd)
			now = now.Add(dd)
			return nil
		},
		NeedReboot: func(context.Context) (bool, error) { return true, nil },
		Reboot:     func(context.Context) error { rebooted = true; return nil }}
	if err := d.Run(context.Background()); err != nil || !rebooted {
		t.Fatalf("%v %v", err, rebooted)
	}
	if len(slept) != 1 || slept[0] != time.Hour {
		t.Fatalf("slept %v, want one hour until the window", slept)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	off := &Daemon{Strategy: updateconf.StrategyOff, Reboot: func(context.Context) error { t.Fatal("rebooted with strategy off"); return nil }}
	off.Run(ctx)
}

// stepLocker is a Locker whose Lock and Unlock answer from lists, then nil.
type stepLocker struct {
	locks, unlocks []error
	locked         int
}

func (l *stepLocker) Lock(context.Context) error {
	l.locked++
	return next(&l.locks)
}

func (l *stepLocker) Unlock(context.Context) error { return next(&l.unlocks) }

func next(errs *[]error) error {
	if len(*errs) == 0 {
		return nil
	}
	err := (*errs)[0]
	*errs = (*errs)[1:]
	return err
}

// A Locker that gives up (a drain that ran out of time) is asked again at the next window,
// or after Retry without one, not at the next poll; one that keeps its lock after the boot
// (the new version on trial) is asked again at the next poll.
func TestDaemonGaveUpAndKeep(t *testing.T) {
	w, _ := ParseWindow("04:00", "1h")
	w.Location = time.UTC
	for _, tc := range []struct {
		name   string
		window *Window
		retry  time.Duration
		start  time.Time
		want   time.Time // when the second Lock is asked (the first: two polls after start)
	}{
		{name: "next window", window: w, start: time.Date(2026, 11, 26, 4, 10, 0, 0, time.UTC), want: time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)},
		{name: "no window", retry: 90 * time.Minute, start: time.Date(2026, 11, 26, 4, 10, 0, 0, time.UTC), want: time.Date(2026, 11, 26, 6, 0, 0, 0, time.UTC)},
		{name: "no window, default", start: time.Date(2026, 11, 26, 4, 10, 0, 0, time.UTC), want: time.Date(2026, 11, 26, 5, 30, 0, 0, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.start
			l := &stepLocker{locks: []error{fmt.Errorf("drain: %w", ErrGaveUp)}, unlocks: []error{fmt.Errorf("on trial: %w", ErrKeep), ErrKeep}}
			var lockedAt []time.Time
			var slept []time.Duration
			d := &Daemon{Strategy: updateconf.StrategyKubernetes, Window: tc.window, Retry: tc.retry, Poll: 10 * time.Minute,
				Locker: lockRecorder{l, func() { lockedAt = append(lockedAt, now) }},
				Now:    func() time.Time { return now },
				Sleep: func(_ context.Context, dd time.Duration) error {
					slept = append(slept, dd)
					now = now.Add(dd)
					return nil
				},
				NeedReboot: func(context.Context) (bool, error) { return true, nil },
				Reboot:     func(context.Context) error { return nil }}
			if err := d.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if len(slept) < 2 || slept[0] != 10*time.Minute || slept[1] != 10*time.Minute {
				t.Fatalf("slept %v: want two polls while Unlock kept the lock", slept)
			}
			if len(lockedAt) != 2 || !lockedAt[1].Equal(tc.want) {
				t.Fatalf("Lock asked at %v, want the second at %v", lockedAt, tc.want)
			}
			for _, s := range slept {
				if s > 10*time.Minute {
					t.Fatalf("slept %v at once: more than a poll", s)
				}
			}
		})
	}
}

type lockRecorder struct {
	*stepLocker
	at func()
}

func (r lockRecorder) Lock(ctx context.Context) error {
	r.at()
	return r.stepLocker.Lock(ctx)
}

func FuzzParseSemaphore(f *testing.F) {
	f.Add([]byte(`{"semaphore":1,"max":1,"holders":[]}`))
	f.Add([]byte(`{"semaphore":0,"max":2,"holders":["a","b"]}`))
	f.Add([]byte(`{"semaphore":-5,"max":1,"holders":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSemaphore(b)
		if err != nil {
			return
		}
		if s.Semaphore > s.Max || s.Holders == nil {
			t.Fatalf("inconsistent semaphore accepted: %+v", s)
		}
		// Whatever was accepted survives a lock/unlock round trip unchanged in count.
		before := s.Semaphore
		if s.Lock("fuzz-machine") == nil {
			s.Unlock("fuzz-machine")
		}
		if s.Semaphore != before {
			t.Fatalf("lock/unlock changed the count: %d -> %d", before, s.Semaphore)
		}
	})
}
